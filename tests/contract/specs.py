"""Atlassian's OpenAPI descriptions of Jira, carried in the repository (``specs/``, gzip-compressed) and
checked against the sha256 recorded for each, so the contract tests run from a bare, offline clone."""

from __future__ import annotations

import functools
import gzip
import hashlib
import json
from pathlib import Path
from typing import Any

SPEC_DIR = Path(__file__).resolve().parent / "specs"

# flavour -> (file, sha256 of the uncompressed bytes, upstream URL); see specs/README.md
SPECS = {
    "cloud": ("jira-cloud-platform.swagger-v3.v3.json",
              "5021849ab54916b9005a44bb9931c061bd8f3c907d2bfdb00104b4bb4eb78093",
              "https://dac-static.atlassian.com/cloud/jira/platform/swagger-v3.v3.json"),
    "datacenter": ("jira-software-dc-10.3.24.openapi.json",
                   "f326fbc98de4d5212a4becbe330aeecf778d56297bf08e1df6ee999c10fd6449",
                   "https://dac-static.atlassian.com/server/jira/platform/jira_software_dc_10003_swagger.v3.json"),
}


class SpecError(RuntimeError):
    pass


def spec_bytes(flavour: str) -> bytes:
    """The uncompressed file, refused unless its sha256 is the recorded one."""
    name, sha, url = SPECS[flavour]
    path = SPEC_DIR / f"{name}.gz"
    if not path.is_file():
        raise SpecError(f"{path} is missing from the checkout (it is part of the repository; from {url})")
    data = gzip.decompress(path.read_bytes())
    got = hashlib.sha256(data).hexdigest()
    if got != sha:
        raise SpecError(f"{path}: sha256 {got} is not the recorded {sha} (see {SPEC_DIR / 'README.md'})")
    return data


@functools.cache
def spec_document(flavour: str) -> dict[str, Any]:
    """The parsed document; callers that change it must copy it first."""
    doc = json.loads(spec_bytes(flavour))
    assert isinstance(doc, dict)
    return doc
