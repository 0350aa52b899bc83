"""Versioned datasets under a local folder or ``s3://bucket/prefix``.

    from datagen.store import open_store
    store = open_store("s3://bucket/prefix")           # or a folder; default $DATAGEN_ROOT or ./datasets
    w = store.writer("problems", stage="import", config={...}, parents=["raw@v1"])
    w.write(rows)                                       # streaming, size-bounded shards
    manifest = w.commit(stats={...})                    # manifest create-only, then `latest` by CAS
    store.scan("problems").filter(...).collect()        # lazy polars over the listed shards
"""

from datagen.store.manifest import Manifest, ParentRef, ShardInfo, StoreNameError
from datagen.store.objects import AlreadyExists, Conflict, NotFound, StoreError
from datagen.store.versions import Store, VersionNotFound, default_root, open_store, parse_ref
from datagen.store.writer import VersionWriter

__all__ = [
    "AlreadyExists",
    "Conflict",
    "Manifest",
    "NotFound",
    "ParentRef",
    "ShardInfo",
    "Store",
    "StoreError",
    "StoreNameError",
    "VersionNotFound",
    "VersionWriter",
    "default_root",
    "open_store",
    "parse_ref",
]
