"""Models that registry packages ship, provisioned into the model repository:
`lightbox models fetch NAME`.

One mechanism for every packaged model (PACKAGED below):

1. get the tarball with the package's own client, `npm pack NAME@VERSION` (or take one
   the operator fetched elsewhere: `--from-tarball FILE.tgz`);
2. check its sha512 against the integrity pinned here (and npm's own report);
3. extract it refusing anything but plain files and folders inside the package;
4. assemble the model's source from the package's layout (each piece checked: the
   chunks of @imgly's split ONNX files by sha256, the shards of a TensorFlow.js layers
   model against its weights manifest);
5. convert it for serving and check the result (the model's own module does this);
6. check the contract, install `<model>/1/model.onnx` with its config rendered for the
   target, and write `provenance.json` beside it: package, version, integrity,
   checksums, the conversion, the licence texts.

Steps 1-5 run once per package version: the converted file and its provenance are
cached outside the checkout (LIGHTBOX_CACHE_DIR, default ~/.cache/lightbox), keyed by
package, version and integrity. A cache entry is trusted only while the file's sha256
matches its provenance; anything else is fetched again. Nothing here fetches at run
time: the stack serves what was installed, and says what is missing.
"""

from __future__ import annotations

import base64
import contextlib
import fcntl
import hashlib
import importlib
import json
import os
import re
import shutil
import subprocess
import tarfile
import tempfile
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from services.models.contracts import ONNX_FILE, resolve
from services.models.install import install, sha256_of
from services.models.render import VERSION
from services.models.rrdn import LayersModel

PROVENANCE = "provenance.json"
# Outcome of the last provisioning run for each packaged model, in the model repository.
STATUS_FILE = ".provisioning.json"
NPM_TIMEOUT_S = 900.0


class ProvisionError(RuntimeError):
    """The package was fetched but refused (integrity, checksum, layout, conversion,
    contract); nothing was installed."""


class RegistryUnavailable(ProvisionError):
    """npm is missing, or the registry cannot be reached; nothing was installed."""


@dataclass(frozen=True)
class ChunkedResource:
    """A file split into chunks by `dist/resources.json` (the @imgly packages'
    layout): {resource: {size, chunks: [{hash: sha256 hex and file name under dist/,
    offsets: [start, end]}]}}."""

    resource: str
    index: str = "dist/resources.json"
    filename: str = "source.onnx"  # what `assemble` writes, kept in the cache entry

    def assemble(self, package: Path, out: Path) -> dict[str, Any]:
        index_path = package / self.index
        if not index_path.is_file():
            raise ProvisionError(f"the package has no {self.index}")
        try:
            entry = json.loads(index_path.read_text())[self.resource]
            size = int(entry["size"])
            chunks = [
                (str(c["hash"]), int(c["offsets"][0]), int(c["offsets"][1]))
                for c in entry["chunks"]
            ]
        except (KeyError, TypeError, ValueError, IndexError) as exc:
            raise ProvisionError(
                f"{self.index} has no usable entry {self.resource!r}: {exc}"
            ) from None
        position = 0
        whole = hashlib.sha256()
        with open(out, "wb") as f:
            for k, (digest, start, end) in enumerate(chunks):
                if not re.fullmatch(r"[0-9a-f]{64}", digest):
                    raise ProvisionError(
                        f"chunk {k} of {self.resource}: {digest!r} is not a sha256"
                    )
                if start != position or end < start:
                    raise ProvisionError(
                        f"chunk {k} of {self.resource} ({digest}) covers [{start}, {end}); "
                        f"the previous one ended at {position}"
                    )
                path = package / Path(self.index).parent / digest
                if not path.is_file():
                    raise ProvisionError(f"chunk {k} of {self.resource} ({digest}) is missing")
                data = path.read_bytes()
                got = hashlib.sha256(data).hexdigest()
                if got != digest:
                    raise ProvisionError(
                        f"chunk {k} of {self.resource} ({path.name}) has sha256 {got}; the "
                        f"package's {self.index} says {digest}: refused"
                    )
                if len(data) != end - start:
                    raise ProvisionError(
                        f"chunk {k} of {self.resource} ({digest}) is {len(data)} bytes; its "
                        f"offsets say {end - start}"
                    )
                f.write(data)
                whole.update(data)
                position = end
        if position != size:
            raise ProvisionError(
                f"{self.resource}: the chunks make {position} bytes; {self.index} says {size}"
            )
        return {
            "resource": self.resource,
            "chunks": len(chunks),
            "bytes": size,
            "sha256": whole.hexdigest(),
        }


@dataclass(frozen=True)
class PackagedModel:
    """A model a registry package ships, and how Lightbox serves it."""

    name: str  # what `lightbox models fetch` takes
    model: str  # the contract's ONNX model it installs
    package: str
    version: str
    integrity: str  # npm's sha512 Subresource Integrity string of the tarball
    source: ChunkedResource | LayersModel
    # "module:function" taking (source file, output file) and returning a JSON-able
    # report; it raises on a conversion or check that fails.
    convert: str
    licences: dict[str, str]  # what -> licence, shown wherever the model is listed
    licence_files: tuple[str, ...]  # files of the package copied into the provenance
    description: str = ""
    homepage: dict[str, str] = field(default_factory=dict)

    @property
    def spec(self) -> str:
        return f"{self.package}@{self.version}"

    @property
    def cache_key(self) -> str:
        sha = base64.b64decode(self.integrity.split("-", 1)[1]).hex()[:16]
        return f"{re.sub(r'[^A-Za-z0-9._-]+', '_', self.package.lstrip('@'))}@{self.version}-{sha}"

    @property
    def tarball_name(self) -> str:
        """The file name `npm pack` gives the tarball."""
        return f"{self.package.lstrip('@').replace('/', '-')}-{self.version}.tgz"


PACKAGED: dict[str, PackagedModel] = {
    p.name: p
    for p in (
        PackagedModel(
            name="isnet",
            model="matting_isnet_onnx",
            package="@imgly/background-removal-data",
            version="1.4.5",
            integrity="sha512-iRXZpPd7YirbJ4eOZ3SlvbdJkAc/LxVjzWLMHOezmRrVThPJPdPc+Y2kHEAVFEVvpDIuvBDyOfTTFBSJT2QR5w==",
            source=ChunkedResource("/models/medium"),
            convert="services.models.isnet:prepare",
            licences={
                "package": "AGPL-3.0 (the package's LICENSE.md)",
                "model": "MIT (ISNet, github.com/xuebinqin/DIS; "
                "the package's ThirdPartyLicenses.json)",
            },
            licence_files=("LICENSE.md", "ThirdPartyLicenses.json"),
            description="ISNet (DIS) general-use matting, fp16 ONNX in 4 MB chunks",
            homepage={
                "model": "github.com/xuebinqin/DIS",
                "package": "github.com/imgly/background-removal-js",
            },
        ),
        PackagedModel(
            name="rrdn",
            model="upscale_rrdn_onnx",
            package="@upscalerjs/esrgan-thick",
            version="1.0.0",
            integrity="sha512-Xt7LAEa1WYVdU8teye1A2J3T2ylb3ihlU/x01x1ieM7zZh5FzTll6fwmeUC82mkztWloGZM65KdSEWOmhlXOdw==",
            # The 4x model; 2x is its result area-averaged, which measured better on real
            # photos than the package's own x2 model (BENCHMARKS.md, Upscale).
            source=LayersModel(
                "models/x4/model.json",
                example_input="assets/fixture.png",
                example_output="assets/samples/4x/result.png",
            ),
            convert="services.models.rrdn:prepare",
            licences={
                "package": "MIT (the package's LICENSE, Kevin Scott)",
                "model": "MIT (UpscalerJS's ESRGAN-thick weights, trained on DIV2K with "
                "idealo's image-super-resolution RRDN, Apache-2.0 code)",
            },
            licence_files=("LICENSE", "README.md"),
            description="ESRGAN-family RRDN x4 (C4 D3 G32 G0 64 T10), a TensorFlow.js layers "
            "model in float32 shards",
            homepage={
                "model": "github.com/idealo/image-super-resolution",
                "package": "github.com/thekevinscott/UpscalerJS",
            },
        ),
    )
}


def packaged(name: str) -> PackagedModel:
    """The packaged model called `name`, or the one that installs the model `name`
    (front or ONNX model)."""
    if name in PACKAGED:
        return PACKAGED[name]
    for p in PACKAGED.values():
        if name in (p.model, resolve(p.model).front):
            return p
    raise KeyError(f"no packaged model {name!r}; known: {', '.join(sorted(PACKAGED))}")


def packaged_for(model: str) -> PackagedModel | None:
    """The packaged model that installs `model` (front or ONNX name), if any."""
    try:
        return packaged(model)
    except KeyError:
        return None


# --- the tarball -------------------------------------------------------------------


def sri_sha512(path: Path) -> str:
    digest = hashlib.sha512()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            digest.update(block)
    return "sha512-" + base64.b64encode(digest.digest()).decode()


def npm_pack(
    spec: str, dest: Path, *, npm: str = "npm", timeout: float = NPM_TIMEOUT_S
) -> tuple[Path, dict[str, Any]]:
    """`npm pack SPEC --json` into `dest`: the tarball and npm's report of it. Raises
    RegistryUnavailable when npm is missing, fails, or runs past `timeout`."""
    exe = shutil.which(npm)
    if exe is None:
        raise RegistryUnavailable(
            f"npm is not installed (no {npm!r} on PATH); install Node.js's npm, or fetch "
            f"{spec} elsewhere and use --from-tarball"
        )
    command = [exe, "pack", spec, "--json", "--pack-destination", str(dest)]
    try:
        done = subprocess.run(
            command, cwd=dest, capture_output=True, text=True, timeout=timeout, check=False
        )
    except subprocess.TimeoutExpired:
        raise RegistryUnavailable(f"`npm pack {spec}` ran past {timeout:.0f} s") from None
    if done.returncode != 0:
        tail = "\n".join((done.stderr or done.stdout).strip().splitlines()[-6:])
        raise RegistryUnavailable(
            f"`npm pack {spec}` failed (exit {done.returncode}); the registry may be "
            f"unreachable:\n{tail}"
        )
    try:
        report = json.loads(done.stdout)[0]
        tarball = dest / str(report["filename"])
    except (ValueError, KeyError, IndexError, TypeError):
        raise RegistryUnavailable(
            f"`npm pack {spec}` printed no JSON report: {done.stdout[-300:]!r}"
        ) from None
    if not tarball.is_file():
        raise RegistryUnavailable(f"`npm pack {spec}` reported {tarball.name}, which is not there")
    return tarball, report


def safe_extract(tarball: Path, dest: Path) -> Path:
    """Extract `tarball` into `dest` and return the package folder (`package/`).
    Refuses the whole tarball if a member is a link, a device, absolute, or outside
    `dest`."""
    root = dest.resolve()
    try:
        with tarfile.open(tarball, "r:*") as tar:
            members = tar.getmembers()
            for m in members:
                if not (m.isfile() or m.isdir()):
                    raise ProvisionError(f"{tarball.name}: {m.name!r} is a link or device: refused")
                target = (root / m.name).resolve()
                if m.name.startswith("/") or not target.is_relative_to(root):
                    raise ProvisionError(
                        f"{tarball.name}: {m.name!r} points outside the package: refused"
                    )
            for m in members:
                target = root / m.name
                if m.isdir():
                    target.mkdir(parents=True, exist_ok=True)
                    continue
                target.parent.mkdir(parents=True, exist_ok=True)
                src = tar.extractfile(m)
                assert src is not None
                with src, open(target, "wb") as out:
                    shutil.copyfileobj(src, out, 1 << 20)
    except (tarfile.TarError, EOFError, OSError) as exc:
        raise ProvisionError(f"{tarball.name} is not a readable tarball: {exc}") from None
    package = root / "package"
    if not package.is_dir():
        raise ProvisionError(f"{tarball.name} has no package/ folder")
    return package


# --- the cache ---------------------------------------------------------------------


def cache_entry(cache_dir: Path, p: PackagedModel) -> Path:
    return cache_dir / "models" / p.name / p.cache_key


@contextlib.contextmanager
def _locked(path: Path) -> Iterator[None]:
    """One provisioning of a packaged model at a time (two `make test`s at once)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "a") as f:
        fcntl.flock(f, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(f, fcntl.LOCK_UN)


def read_cache(entry: Path, p: PackagedModel) -> dict[str, Any] | None:
    """The cached provenance when the entry is complete and its file has the sha256
    the provenance records; None otherwise (the caller fetches again)."""
    try:
        provenance = json.loads((entry / PROVENANCE).read_text())
    except (OSError, ValueError):
        return None
    model = entry / ONNX_FILE
    if (
        not model.is_file()
        or provenance.get("integrity") != p.integrity
        or provenance.get("installed", {}).get("sha256") != sha256_of(model)
    ):
        return None
    return provenance


# --- provisioning ------------------------------------------------------------------


@dataclass
class Provisioned:
    name: str
    model: str
    source: str  # "cache", "npm", "tarball"
    installed: bool  # the repository changed (False: it already had this file)
    path: Path
    provenance: dict[str, Any]
    seconds: float


def _converter(p: PackagedModel) -> Callable[[Path, Path], dict[str, Any]]:
    module, _, func = p.convert.partition(":")
    return getattr(importlib.import_module(module), func)  # type: ignore[no-any-return]


def build(
    p: PackagedModel,
    entry: Path,
    *,
    tarball: Path | None = None,
    npm: str = "npm",
    timeout: float = NPM_TIMEOUT_S,
) -> dict[str, Any]:
    """Fetch (or take `tarball`), verify, assemble and convert into the cache entry;
    returns the provenance. Nothing is left in `entry` unless every step passed."""
    entry.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(dir=entry.parent, prefix=".build-") as tmp:
        work = Path(tmp)
        npm_report: dict[str, Any] = {}
        if tarball is None:
            (work / "pack").mkdir()
            tarball, npm_report = npm_pack(p.spec, work / "pack", npm=npm, timeout=timeout)
            fetched_with = f"npm pack {p.spec}"
        else:
            fetched_with = f"--from-tarball {Path(tarball).resolve()}"
        integrity = sri_sha512(tarball)
        if integrity != p.integrity:
            raise ProvisionError(
                f"{tarball.name}: sha512 integrity is {integrity}; Lightbox pins {p.spec} at "
                f"{p.integrity}: refused"
            )
        if npm_report and npm_report.get("integrity") not in (None, p.integrity):
            raise ProvisionError(
                f"npm reports integrity {npm_report.get('integrity')} for {p.spec}; Lightbox "
                f"pins {p.integrity}: refused"
            )
        package = safe_extract(tarball, work / "x")
        manifest = json.loads((package / "package.json").read_text())
        if (manifest.get("name"), manifest.get("version")) != (p.package, p.version):
            raise ProvisionError(
                f"{tarball.name} holds {manifest.get('name')}@{manifest.get('version')}, "
                f"not {p.spec}"
            )
        source_file = work / p.source.filename
        source = p.source.assemble(package, source_file)
        converted = work / ONNX_FILE
        conversion = _converter(p)(source_file, converted)
        licences = {}
        for name in p.licence_files:
            path = package / name
            licences[name] = path.read_text(errors="replace") if path.is_file() else None
        provenance = {
            "name": p.name,
            "model": p.model,
            "package": p.package,
            "version": p.version,
            "integrity": integrity,
            "npm_reported_integrity": npm_report.get("integrity"),
            "tarball": {
                "file": tarball.name,
                "bytes": tarball.stat().st_size,
                "sha256": sha256_of(tarball),
                "sha1": hashlib.sha1(tarball.read_bytes(), usedforsecurity=False).hexdigest(),
            },
            "fetched_with": fetched_with,
            "fetched_at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
            "source": source,
            "conversion": conversion,
            "installed": {
                "file": ONNX_FILE,
                "bytes": converted.stat().st_size,
                "sha256": sha256_of(converted),
            },
            "licence": p.licences,
            "licence_texts": licences,
            "homepage": p.homepage,
        }
        (work / PROVENANCE).write_text(json.dumps(provenance, indent=2) + "\n")
        staged = work / "entry"
        staged.mkdir()
        os.replace(converted, staged / ONNX_FILE)
        os.replace(work / PROVENANCE, staged / PROVENANCE)
        # The file as the package ships it, so a later check (or a new conversion)
        # needs no fetch; it is never served.
        os.replace(source_file, staged / p.source.filename)
        if entry.exists():
            os.replace(entry, work / "old")
        os.replace(staged, entry)
    return provenance


def _repo_has(
    repo: Path, p: PackagedModel, provenance: dict[str, Any], target: str, cached: Path
) -> bool:
    """Whether the repository already serves this very file, rendered for `target`."""
    model_dir = repo / p.model
    installed = model_dir / VERSION / ONNX_FILE
    try:
        here = json.loads((model_dir / PROVENANCE).read_text())
        record = json.loads((model_dir / "installed.json").read_text())
    except (OSError, ValueError):
        return False
    if record.get("target") != target or not (model_dir / "config.pbtxt").exists():
        return False
    if here.get("integrity") != provenance["integrity"]:
        return False
    want = provenance["installed"]["sha256"]
    if here.get("installed", {}).get("sha256") != want or not installed.is_file():
        return False
    with contextlib.suppress(OSError):
        if os.path.samefile(installed, cached):
            return True
    return sha256_of(installed) == want


def provision(
    name: str,
    repo: Path,
    cache_dir: Path,
    *,
    target: str = "cpu",
    tarball: Path | None = None,
    refresh: bool = False,
    npm: str = "npm",
    timeout: float = NPM_TIMEOUT_S,
) -> Provisioned:
    """Install the packaged model `name` into `repo`, from the cache when it holds a
    verified copy, else from the registry (or `tarball`). Raises RegistryUnavailable or
    ProvisionError; the repository is unchanged then."""
    t0 = time.monotonic()
    p = packaged(name)
    entry = cache_entry(cache_dir, p)
    with _locked(entry.parent / ".lock"):
        provenance = None if (refresh or tarball is not None) else read_cache(entry, p)
        source = "cache"
        if provenance is None:
            provenance = build(p, entry, tarball=tarball, npm=npm, timeout=timeout)
            source = "npm" if tarball is None else "tarball"
        cached = entry / ONNX_FILE
        changed = False
        if not _repo_has(repo, p, provenance, target, cached):
            install(
                p.model,
                cached,
                repo,
                sha256=provenance["installed"]["sha256"],
                target=target,
                link=True,
            )
            record = dict(provenance, target=target)
            (repo / p.model / PROVENANCE).write_text(json.dumps(record, indent=2) + "\n")
            changed = True
    return Provisioned(
        name=p.name,
        model=p.model,
        source=source,
        installed=changed,
        path=repo / p.model / VERSION / ONNX_FILE,
        provenance=provenance,
        seconds=time.monotonic() - t0,
    )


# --- what the stack, `models list` and GET /v1/models show --------------------------


def summary(provenance: dict[str, Any]) -> dict[str, Any]:
    """The provenance without the licence texts: what listings show."""
    return {
        "package": provenance.get("package"),
        "version": provenance.get("version"),
        "integrity": provenance.get("integrity"),
        "tarball_sha256": provenance.get("tarball", {}).get("sha256"),
        "source_sha256": provenance.get("source", {}).get("sha256"),
        "sha256": provenance.get("installed", {}).get("sha256"),
        "fetched_with": provenance.get("fetched_with"),
        "fetched_at": provenance.get("fetched_at"),
        "conversion": provenance.get("conversion", {}).get("summary"),
        "licence": provenance.get("licence"),
    }


def read_provenance(repo: Path, model: str) -> dict[str, Any] | None:
    try:
        return json.loads((repo / model / PROVENANCE).read_text())  # type: ignore[no-any-return]
    except (OSError, ValueError):
        return None


def write_status(repo: Path, outcomes: dict[str, dict[str, Any]]) -> None:
    """Record the last provisioning run's outcome per packaged model (read by the
    stack's banner and GET /v1/models)."""
    path = repo / STATUS_FILE
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(json.dumps(outcomes, indent=2) + "\n")
    os.replace(tmp, path)


def read_status(repo: Path) -> dict[str, dict[str, Any]]:
    try:
        return json.loads((repo / STATUS_FILE).read_text())  # type: ignore[no-any-return]
    except (OSError, ValueError):
        return {}


def packaged_state(repo: Path) -> list[dict[str, Any]]:
    """For each packaged model: installed or not in `repo`, its provenance summary, the
    last provisioning's outcome, and (when missing) how to install it by hand. Reads
    small JSON files only: cheap enough for every GET /v1/models."""
    status = read_status(repo)
    out = []
    for p in PACKAGED.values():
        provenance = read_provenance(repo, p.model)
        # Installed by hand (`lightbox models install`) counts too, without a provenance.
        installed = (repo / p.model / VERSION / ONNX_FILE).is_file()
        last = status.get(p.name)
        out.append(
            {
                "name": p.name,
                "model": p.model,
                "front": resolve(p.model).front,
                "package": p.package,
                "version": p.version,
                "licence": p.licences,
                "installed": installed,
                "provenance": summary(provenance) if installed and provenance else None,
                "last_provisioning": {k: last[k] for k in ("status", "message", "at") if k in last}
                if last
                else None,
                "by_hand": [] if installed else by_hand(p),
            }
        )
    return out


def by_hand(p: PackagedModel) -> list[str]:
    """The commands that install `p` without this machine reaching the registry."""
    front = resolve(p.model).front
    return [
        f"npm pack {p.spec}   (anywhere with the registry; copy the .tgz here)",
        f"lightbox models fetch {p.name} --from-tarball {p.tarball_name}",
        f"lightbox models install {front} FILE.onnx   (a {front} ONNX file you already have)",
    ]


def provision_all(
    repo: Path,
    cache_dir: Path,
    *,
    target: str = "cpu",
    enabled: bool | None = None,
    npm: str = "npm",
) -> dict[str, dict[str, Any]]:
    """`make run` / `make test`: provision every packaged model unless the operator
    opted out (LIGHTBOX_PROVISION_MODELS=0: then a provisioned copy in `repo` is
    removed, so the stack does not serve it). Never raises for a model that cannot be
    had: each outcome says installed, skipped or failed (why, and the commands that
    install it by hand), and is recorded in the repository's STATUS_FILE."""
    if enabled is None:
        from services.common.settings import CommonSettings

        enabled = CommonSettings().provision_models
    outcomes: dict[str, dict[str, Any]] = {}
    for p in PACKAGED.values():
        base = {
            "model": p.model,
            "package": p.spec,
            "at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        }
        if not enabled:
            # Opting out means not serving it: a copy an earlier run provisioned goes
            # (the cache keeps it); one the operator installed by hand stays.
            removed = read_provenance(repo, p.model) is not None
            if removed:
                shutil.rmtree(repo / p.model)
            outcomes[p.name] = base | {
                "status": "skipped",
                "message": f"not provisioned: LIGHTBOX_PROVISION_MODELS=0 (opted out of {p.spec})"
                + ("; removed the provisioned copy from the model repository" if removed else ""),
                "by_hand": by_hand(p),
            }
            continue
        try:
            done = provision(p.name, repo, cache_dir, target=target, npm=npm)
        except Exception as exc:  # noqa: BLE001 - any failure leaves the stack on its fallback
            unreachable = isinstance(exc, RegistryUnavailable)
            outcomes[p.name] = base | {
                "status": "failed",
                "unreachable": unreachable,
                "message": f"NOT provisioned ({type(exc).__name__}): {exc}",
                "by_hand": by_hand(p),
            }
            continue
        where = {"cache": "from the cache", "npm": "fetched with npm", "tarball": "from a tarball"}
        outcomes[p.name] = base | {
            "status": "installed",
            "source": done.source,
            "message": f"{p.model} {'installed' if done.installed else 'up to date'} "
            f"({where[done.source]}, {done.seconds:.2f} s); {p.spec}, licences: "
            + "; ".join(f"{k} {v.split(' ')[0]}" for k, v in p.licences.items()),
        }
    write_status(repo, outcomes)
    return outcomes
