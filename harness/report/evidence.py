"""Evidence files a test case attaches (plots, captures, logs) and where the reports show them.

``evidence.attach(path, kind="plot")`` in a test copies the file into the report folder (under
``<kind>s/`` unless it is already inside it), lists it in the case's conformance.json evidence
(``"plots": ["plots/x.png"]``, relative to the report folder, which conformance.html shows), attaches
it to the Allure result and, for images, to the case's row in report.html.
"""

from __future__ import annotations

import base64
import shutil
from dataclasses import dataclass, field
from pathlib import Path

IMAGE_TYPES = {".png": "image/png", ".jpg": "image/jpeg", ".jpeg": "image/jpeg", ".svg": "image/svg+xml"}


@dataclass
class EvidenceFile:
    kind: str
    path: Path  # inside the report folder
    relative: str  # to the report folder, with forward slashes
    name: str


@dataclass
class Evidence:
    report_dir: Path | None
    files: list[EvidenceFile] = field(default_factory=list)

    def attach(self, path: Path | str, kind: str = "plot", name: str | None = None) -> EvidenceFile:
        source = Path(path)
        if not source.is_file():
            raise FileNotFoundError(f"evidence file {source} does not exist")
        target = source
        if self.report_dir is not None:
            root = self.report_dir.resolve()
            if root not in source.resolve().parents:
                target = root / f"{kind}s" / source.name
                target.parent.mkdir(parents=True, exist_ok=True)
                shutil.copyfile(source, target)
            relative = target.resolve().relative_to(root).as_posix()
        else:
            relative = source.as_posix()
        item = EvidenceFile(kind, target, relative, name or source.stem)
        self.files.append(item)
        _attach_allure(item)
        return item

    def by_kind(self) -> dict[str, list[str]]:
        listing: dict[str, list[str]] = {}
        for item in self.files:
            listing.setdefault(f"{item.kind}s", []).append(item.relative)
        return listing

    def html_extras(self, extras_module) -> list:
        """pytest-html extras: images embedded (report.html is self-contained), others linked."""
        result = []
        for item in self.files:
            mime = IMAGE_TYPES.get(item.path.suffix.lower())
            if mime is not None:
                content = base64.b64encode(item.path.read_bytes()).decode("ascii")
                result.append(extras_module.image(content, name=item.name, mime_type=mime,
                                                  extension=item.path.suffix.lstrip(".")))
            else:
                result.append(extras_module.url(item.relative, name=item.name))
        return result


def _attach_allure(item: EvidenceFile) -> None:
    try:
        import allure
    except ImportError:  # pragma: no cover - a dependency of the harness
        return
    kind = {".png": allure.attachment_type.PNG, ".jpg": allure.attachment_type.JPG,
            ".svg": allure.attachment_type.SVG}.get(item.path.suffix.lower())
    try:
        allure.attach.file(str(item.path), name=item.name, attachment_type=kind)
    except Exception:  # no Allure test open (a plain pytest run): the other reports still have it
        pass
