from tests.model_repository.triton_fixtures import (  # noqa: F401  (fixtures for this folder)
    matting,
    numba_cache,
    production_repo,
    production_server,
    test_models,
    triton_server,
)
