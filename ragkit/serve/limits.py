"""Upload limits of `ragkit serve`, in a module without FastAPI so the CLI reads the defaults cheaply."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass
class UploadLimits:
    """What one upload may hold: --max-file-bytes per file, --max-files per request; the guard caps
    the whole body at --max-upload-bytes before it is parsed."""

    max_file_bytes: int = 20 * 1024 * 1024
    max_files: int = 20
    max_upload_bytes: int = 64 * 1024 * 1024
