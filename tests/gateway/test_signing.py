from services.gateway import signing


def test_roundtrip_tamper_and_expiry() -> None:
    secret = "s" * 40
    key = "outputs/20261122/abcdefghijklmnopqrstuv.jpg"
    sig = signing.signature(secret, key, 2000)
    assert signing.check(secret, key, 2000, sig, now=1000) == "ok"
    assert signing.check(secret, key, 2000, sig, now=2001) == "expired"
    assert signing.check(secret, key, 2001, sig, now=1000) == "invalid"
    assert signing.check(secret, key + "x", 2000, sig, now=1000) == "invalid"
    assert signing.check("t" * 40, key, 2000, sig, now=1000) == "invalid"
    # A tampered link never learns whether it expired.
    assert signing.check(secret, key, 2000, "0" + sig[1:], now=5000) == "invalid"
    assert signing.signed_path(secret, key, 2000).startswith("/v1/files/outputs/")


def test_hostile_signatures_are_invalid_not_errors() -> None:
    secret, key = "s" * 40, "outputs/20261122/abcdefghijklmnopqrstuv.jpg"
    for sig in ("", "é" * 64, "\x00", "ff" * 1000):
        assert signing.check(secret, key, 2000, sig, now=1000) == "invalid"
