"""Images to try and check the pipelines on, not used by any service at run time.

- synthetic.py: deterministic synthetic product photos with exact ground-truth
  alpha (`make_sample`, `all_samples`, `varied_samples`), drawn by `make demo`
  (services/demo.py), the preset thumbnails (services/compositor/thumbnails.py),
  the tests and the benchmarks;
- photos.py: real photographs from scikit-image's wheel with probe points placed
  by eye, for matting and upscaling checks where a synthetic image could flatter
  an engine (tests and benchmarks only).
"""
