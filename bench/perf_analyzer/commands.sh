#!/bin/sh
# Written by bench/triton_bench.py; run from the repository root.
set -e
perf_analyzer -i grpc -u "${TRITON_GRPC:-127.0.0.1:8083}" --concurrency-range 1:8:3 --measurement-interval 3000 -m matting_classical --input-data bench/perf_analyzer/matting_classical.json
perf_analyzer -i grpc -u "${TRITON_GRPC:-127.0.0.1:8083}" --concurrency-range 1:8:3 --measurement-interval 3000 -m matting_birefnet --input-data bench/perf_analyzer/matting_birefnet.json
perf_analyzer -i grpc -u "${TRITON_GRPC:-127.0.0.1:8083}" --concurrency-range 1:8:3 --measurement-interval 3000 -m upscale_lanczos --input-data bench/perf_analyzer/upscale_lanczos.json
perf_analyzer -i grpc -u "${TRITON_GRPC:-127.0.0.1:8083}" --concurrency-range 1:8:3 --measurement-interval 3000 -m upscale_realesrgan --input-data bench/perf_analyzer/upscale_realesrgan.json
perf_analyzer -i grpc -u "${TRITON_GRPC:-127.0.0.1:8083}" --concurrency-range 1:8:3 --measurement-interval 3000 -m inpaint_telea --input-data bench/perf_analyzer/inpaint_telea.json
perf_analyzer -i grpc -u "${TRITON_GRPC:-127.0.0.1:8083}" --concurrency-range 1:8:3 --measurement-interval 3000 -m inpaint_lama --input-data bench/perf_analyzer/inpaint_lama.json
perf_analyzer -i grpc -u "${TRITON_GRPC:-127.0.0.1:8083}" --concurrency-range 1:8:3 --measurement-interval 3000 -m segment_clipseg --input-data bench/perf_analyzer/segment_clipseg.json
perf_analyzer -i grpc -u "${TRITON_GRPC:-127.0.0.1:8083}" --concurrency-range 1:8:3 --measurement-interval 3000 -m face_detector --input-data bench/perf_analyzer/face_detector.json
perf_analyzer -i grpc -u "${TRITON_GRPC:-127.0.0.1:8083}" --concurrency-range 1:8:3 --measurement-interval 3000 -m face_codeformer --input-data bench/perf_analyzer/face_codeformer.json
perf_analyzer -i grpc -u "${TRITON_GRPC:-127.0.0.1:8083}" --concurrency-range 1:8:3 --measurement-interval 3000 -m matting_birefnet_onnx --input-data random --shape input_image:3,1024,1024
perf_analyzer -i grpc -u "${TRITON_GRPC:-127.0.0.1:8083}" --concurrency-range 1:8:3 --measurement-interval 3000 -m matting_birefnet_onnx --input-data random --shape input_image:3,1024,1024 --shared-memory system
perf_analyzer -i grpc -u "${TRITON_GRPC:-127.0.0.1:8083}" --concurrency-range 1:8:3 --measurement-interval 3000 -m upscale_realesrgan_onnx --input-data random --shape input:3,32,32
perf_analyzer -i grpc -u "${TRITON_GRPC:-127.0.0.1:8083}" --concurrency-range 1:8:3 --measurement-interval 3000 -m upscale_realesrgan_onnx --input-data random --shape input:3,32,32 --shared-memory system
perf_analyzer -i grpc -u "${TRITON_GRPC:-127.0.0.1:8083}" --concurrency-range 1:8:3 --measurement-interval 3000 -m inpaint_lama_onnx --input-data random --shape image:3,64,64 --shape mask:1,64,64
perf_analyzer -i grpc -u "${TRITON_GRPC:-127.0.0.1:8083}" --concurrency-range 1:8:3 --measurement-interval 3000 -m inpaint_lama_onnx --input-data random --shape image:3,64,64 --shape mask:1,64,64 --shared-memory system
perf_analyzer -i grpc -u "${TRITON_GRPC:-127.0.0.1:8083}" --concurrency-range 1:8:3 --measurement-interval 3000 -m segment_clipseg_onnx --input-data random --shape input_ids:77 --shape pixel_values:3,352,352 --shape attention_mask:77
perf_analyzer -i grpc -u "${TRITON_GRPC:-127.0.0.1:8083}" --concurrency-range 1:8:3 --measurement-interval 3000 -m segment_clipseg_onnx --input-data random --shape input_ids:77 --shape pixel_values:3,352,352 --shape attention_mask:77 --shared-memory system
perf_analyzer -i grpc -u "${TRITON_GRPC:-127.0.0.1:8083}" --concurrency-range 1:8:3 --measurement-interval 3000 -m face_detector_onnx --input-data random --shape input:3,640,640
perf_analyzer -i grpc -u "${TRITON_GRPC:-127.0.0.1:8083}" --concurrency-range 1:8:3 --measurement-interval 3000 -m face_detector_onnx --input-data random --shape input:3,640,640 --shared-memory system
perf_analyzer -i grpc -u "${TRITON_GRPC:-127.0.0.1:8083}" --concurrency-range 1:8:3 --measurement-interval 3000 -m face_codeformer_onnx --input-data random --shape input:3,512,512 --shape weight:1
perf_analyzer -i grpc -u "${TRITON_GRPC:-127.0.0.1:8083}" --concurrency-range 1:8:3 --measurement-interval 3000 -m face_codeformer_onnx --input-data random --shape input:3,512,512 --shape weight:1 --shared-memory system
