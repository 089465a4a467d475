import pytest

from services.common.errors import LightboxError
from services.gateway.submit import prefer_wait


@pytest.mark.parametrize(
    ("header", "seconds"),
    [
        ("", 0),
        ("wait=5", 5),
        ("respond-async, wait=10", 10),
        ("wait=600", 60),
        ('wait="7"', 7),
        ("handling=lenient; wait=3", 3),
        ("return=minimal", 0),
    ],
)
def test_prefer_wait(header: str, seconds: int) -> None:
    assert prefer_wait(header, cap=60) == seconds


@pytest.mark.parametrize("header", ["wait=", "wait=-1", "wait=abc", "wait=1.5", "wait=99999999"])
def test_prefer_wait_refuses_nonsense(header: str) -> None:
    with pytest.raises(LightboxError) as err:
        prefer_wait(header, cap=60)
    assert err.value.code == "invalid_parameter" and err.value.field == "Prefer"
