"""The database schema, as an ordered list of migrations; ``PRAGMA user_version`` counts those
applied. Never edit a released migration: append a new one.
"""

from __future__ import annotations

from typing import Final

__all__ = ["MIGRATIONS", "SCHEMA_VERSION"]

MIGRATIONS: Final[list[str]] = [
    # 1: images by manifest digest, tags, repo digests, layer diff IDs, leases.
    """
    CREATE TABLE images (
        manifest_digest TEXT PRIMARY KEY,
        config_digest   TEXT NOT NULL,
        media_type      TEXT NOT NULL,
        created         TEXT,
        size            INTEGER NOT NULL,
        added           TEXT NOT NULL
    );
    CREATE INDEX images_config_digest ON images (config_digest);

    CREATE TABLE tags (
        name            TEXT PRIMARY KEY,
        manifest_digest TEXT NOT NULL REFERENCES images (manifest_digest),
        updated         TEXT NOT NULL
    );

    CREATE TABLE repo_digests (
        repository      TEXT NOT NULL,
        manifest_digest TEXT NOT NULL REFERENCES images (manifest_digest) ON DELETE CASCADE,
        PRIMARY KEY (repository, manifest_digest)
    );

    -- A layer blob's digest -> its uncompressed diff ID and size.
    CREATE TABLE layers (
        digest     TEXT PRIMARY KEY,
        diff_id    TEXT NOT NULL,
        size       INTEGER NOT NULL,
        media_type TEXT NOT NULL
    );
    CREATE INDEX layers_diff_id ON layers (diff_id);

    CREATE TABLE leases (
        id      TEXT PRIMARY KEY,
        created REAL NOT NULL,
        expires REAL NOT NULL
    );

    CREATE TABLE lease_resources (
        lease_id TEXT NOT NULL REFERENCES leases (id) ON DELETE CASCADE,
        kind     TEXT NOT NULL,
        key      TEXT NOT NULL,
        PRIMARY KEY (lease_id, kind, key)
    );
    """,
    # 2: snapshots (strata.snapshot): key -> directory id under snapshots/, parent chain, kind.
    """
    CREATE TABLE snapshots (
        key     TEXT PRIMARY KEY,
        id      INTEGER UNIQUE NOT NULL,
        parent  TEXT REFERENCES snapshots (key),
        kind    TEXT NOT NULL,
        created TEXT NOT NULL,
        labels  TEXT NOT NULL
    );
    CREATE INDEX snapshots_parent ON snapshots (parent);
    """,
    # 3: containers: an image, a writable snapshot, a runtime, and their state.
    """
    CREATE TABLE containers (
        id         TEXT PRIMARY KEY,
        name       TEXT NOT NULL UNIQUE,
        image      TEXT NOT NULL,
        image_ref  TEXT NOT NULL,
        snapshot   TEXT NOT NULL,
        runtime    TEXT NOT NULL,
        config     TEXT NOT NULL,
        state      TEXT NOT NULL,
        pid        INTEGER NOT NULL DEFAULT 0,
        exit_code  INTEGER,
        created    TEXT NOT NULL,
        started    TEXT,
        finished   TEXT
    );
    CREATE INDEX containers_image ON containers (image);
    """,
    # 4: the bytes of a layer's regular files (Docker's layer size), when known.
    """
    ALTER TABLE layers ADD COLUMN content_size INTEGER;
    """,
    # 5: the build cache (strata.builder.cache): a step's key -> the image it made, with what
    # the key was made of, so that a miss can be explained against the nearest earlier build.
    """
    -- An image a build step made: hidden by `image ls` (but -a) and kept by `image prune`.
    ALTER TABLE images ADD COLUMN intermediate INTEGER NOT NULL DEFAULT 0;
    -- The image it was made from by a build step or a commit (Docker's Parent): its ID.
    ALTER TABLE images ADD COLUMN parent TEXT;

    CREATE TABLE build_cache (
        key         TEXT PRIMARY KEY,
        parent      TEXT NOT NULL,
        instruction TEXT NOT NULL,
        original    TEXT NOT NULL,
        image       TEXT NOT NULL REFERENCES images (manifest_digest) ON DELETE CASCADE,
        args        TEXT NOT NULL,
        sources     TEXT,
        created     TEXT NOT NULL,
        used        TEXT NOT NULL
    );
    CREATE INDEX build_cache_parent ON build_cache (parent);
    CREATE INDEX build_cache_image ON build_cache (image);

    -- The steps of the last build of a Dockerfile in a context (for explanations).
    CREATE TABLE build_lineage (
        identity TEXT PRIMARY KEY,
        steps    TEXT NOT NULL,
        updated  TEXT NOT NULL
    );
    """,
    # 6: the registry (strata.registry): compressed blobs made for a push, kept so that the next
    # push neither compresses again nor changes a digest; and which repositories of which
    # registries are known to hold a blob, for cross-repository mounts.
    """
    CREATE TABLE layer_compressions (
        diff_id     TEXT NOT NULL,
        compression TEXT NOT NULL,
        digest      TEXT NOT NULL,
        size        INTEGER NOT NULL,
        PRIMARY KEY (diff_id, compression)
    );
    CREATE INDEX layer_compressions_digest ON layer_compressions (digest);

    CREATE TABLE blob_sources (
        digest     TEXT NOT NULL,
        registry   TEXT NOT NULL,
        repository TEXT NOT NULL,
        updated    TEXT NOT NULL,
        PRIMARY KEY (digest, registry, repository)
    );
    """,
    # 7: the digest a repo digest names when it is not the image's own manifest: a pull by
    # tag of a multi-platform index shows the index's digest, as Docker does.
    """
    ALTER TABLE repo_digests ADD COLUMN digest TEXT;
    """,
    # 8: an image's names read by its manifest digest (every lookup does, strata.image.store):
    # by index, not by a scan of every tag and repo digest.
    """
    CREATE INDEX tags_manifest_digest ON tags (manifest_digest);
    CREATE INDEX repo_digests_manifest_digest ON repo_digests (manifest_digest);
    """,
    # 9 (vol): named and anonymous volumes (strata.volume), and which containers use each: a
    # volume with a user is never removed, checked in the transaction that records the user.
    """
    CREATE TABLE volumes (
        name      TEXT PRIMARY KEY,
        driver    TEXT NOT NULL,
        labels    TEXT NOT NULL,
        options   TEXT NOT NULL,
        anonymous INTEGER NOT NULL DEFAULT 0,
        created   TEXT NOT NULL
    );

    CREATE TABLE volume_users (
        volume    TEXT NOT NULL REFERENCES volumes (name),
        container TEXT NOT NULL,
        PRIMARY KEY (volume, container)
    );
    CREATE INDEX volume_users_container ON volume_users (container);
    """,
    # 10 (net, issue 12): user-defined bridge networks (strata.network.records); the default
    # ``bridge`` is not a row: every root has it.
    """
    CREATE TABLE networks (
        id       TEXT PRIMARY KEY,
        name     TEXT NOT NULL UNIQUE,
        bridge   TEXT NOT NULL,
        subnet   TEXT NOT NULL,
        gateway  TEXT NOT NULL,
        internal INTEGER NOT NULL DEFAULT 0,
        labels   TEXT NOT NULL DEFAULT '{}',
        created  TEXT NOT NULL
    );
    """,
    # 11 (res): a container's life beyond its state: killed by the OOM killer, restarts by its
    # policy (and whether it waits to restart), stopped by the user (no restart then), and
    # its health (Docker's State.Health as JSON, NULL without a healthcheck).
    """
    ALTER TABLE containers ADD COLUMN oom_killed INTEGER NOT NULL DEFAULT 0;
    ALTER TABLE containers ADD COLUMN restart_count INTEGER NOT NULL DEFAULT 0;
    ALTER TABLE containers ADD COLUMN restarting INTEGER NOT NULL DEFAULT 0;
    ALTER TABLE containers ADD COLUMN user_stopped INTEGER NOT NULL DEFAULT 0;
    ALTER TABLE containers ADD COLUMN health TEXT;
    """,
]

SCHEMA_VERSION: Final = len(MIGRATIONS)
