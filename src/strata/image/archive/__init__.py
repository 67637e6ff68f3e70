"""Image archives: read and write docker-archive, oci-archive and OCI layout directories.

`read_archive` takes any of Docker's archive shapes (<= 24 legacy, skopeo's, >= 25 combined with
an OCI layout), OCI archives and OCI layout directories, plain or compressed, from a file or a
one-pass stream, and puts every image's verified blobs in the content store. `write_archive`
writes docker-archive (Docker 25's combined layout, readable by old and new tools) or oci-archive
from the content store. Hostile input is expected: member paths, links, sizes and digests are
all checked, and every error is one line naming the input.
"""

from strata.image.archive.formats import (
    ArchiveFormat,
    LoadedImage,
    LoadedLayer,
    SaveImage,
)
from strata.image.archive.reader import read_archive
from strata.image.archive.writer import write_archive

__all__ = [
    "ArchiveFormat",
    "LoadedImage",
    "LoadedLayer",
    "SaveImage",
    "read_archive",
    "write_archive",
]
