from __future__ import annotations

import grpc
import numpy as np
import pytest
from lightbox.v1 import compositor_pb2_grpc

from services.common.grpcutil import channel
from services.compositor.server import build_server
from services.compositor.settings import CompositorSettings

from .products import bottle


@pytest.fixture(scope="session")
def settings(tmp_path_factory: pytest.TempPathFactory) -> CompositorSettings:
    return CompositorSettings(home=tmp_path_factory.mktemp("home"), compositor_workers=2)


@pytest.fixture(scope="session")
def compositor_address(settings: CompositorSettings):
    server, port = build_server(settings, "127.0.0.1:0")
    server.start()
    yield f"127.0.0.1:{port}"
    server.stop(None).wait()


@pytest.fixture(scope="session")
def grpc_channel(compositor_address: str):
    with channel(compositor_address) as ch:
        grpc.channel_ready_future(ch).result(timeout=10)
        yield ch


@pytest.fixture(scope="session")
def stub(grpc_channel: grpc.Channel) -> compositor_pb2_grpc.CompositorServiceStub:
    return compositor_pb2_grpc.CompositorServiceStub(grpc_channel)


@pytest.fixture(scope="session")
def subject() -> np.ndarray:
    """A 256x256 RGBA bottle: base at 90 % height, anti-aliased edges."""
    return bottle(256)
