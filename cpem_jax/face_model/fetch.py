"""Download ICT-FaceKit from its public repository (needs internet)."""
from __future__ import annotations

import os
import shutil
import urllib.error
import urllib.request

ICT_ARCHIVE_URL = "https://github.com/ICT-VGL/ICT-FaceKit/archive/refs/heads/master.zip"


class FetchError(RuntimeError):
    """The download could not be completed."""


def fetch_ict(destination: str, url: str = ICT_ARCHIVE_URL, timeout_s: float = 30.0) -> str:
    """Downloads the ICT-FaceKit archive to `destination` (a .zip path); returns it.

    Writes to a temporary name first, so a failed download never leaves a partial archive.
    """
    if os.path.isdir(destination):
        destination = os.path.join(destination, "ICT-FaceKit-master.zip")
    os.makedirs(os.path.dirname(os.path.abspath(destination)), exist_ok=True)
    partial = destination + ".part"
    try:
        with urllib.request.urlopen(url, timeout=timeout_s) as response, \
                open(partial, "wb") as out:
            total = int(response.headers.get("Content-Length") or 0)
            from tqdm import tqdm
            with tqdm(total=total or None, unit="B", unit_scale=True,
                      desc="ICT-FaceKit") as bar:
                while chunk := response.read(1 << 20):
                    out.write(chunk)
                    bar.update(len(chunk))
    except (urllib.error.URLError, OSError, TimeoutError) as err:
        if os.path.exists(partial):
            os.remove(partial)
        raise FetchError(
            f"could not download ICT-FaceKit from {url} ({err}). Without internet, download "
            f"the archive on another machine (GitHub: ICT-VGL/ICT-FaceKit, 'Download ZIP') and "
            f"pass its path with --face-model or CPEM_FACE_MODEL.") from None
    shutil.move(partial, destination)
    return destination
