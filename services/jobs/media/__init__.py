"""The worker's pipelines for PixelAPI's non-image endpoints (issue 19): music
(MusicGen), video (WAN 2.1 text to video) and virtual try-on (CatVTON). Each module
drives its Triton pipeline model through TritonEngines.call and hands back raw samples,
frames or pixels plus the encoder that turns them into the one output file (WAV, MP4,
PNG); services/jobs/pipeline.py runs them as job stages."""
