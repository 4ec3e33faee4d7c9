#!/usr/bin/env python3
"""Builds a complete TUF repository with python-tuf's Metadata API, for updog's interop tests.

    make_repo.py OUT_DIR [--delegations] [--consistent-snapshot] [--updates N]
                 [--variant V] [--arch A] [--expires RFC3339]

Writes:
    OUT_DIR/root.json        the trusted root a client starts from (root v1)
    OUT_DIR/manifest.json    the published manifest.json's bytes, for tests to compare downloads with
    OUT_DIR/metadata/        1.root.json, timestamp.json, snapshot.json, targets.json (and delegated roles);
                             with --consistent-snapshot: <version>.<role>.json for all but timestamp
    OUT_DIR/targets/         manifest.json; with --consistent-snapshot: <sha256>.manifest.json

manifest.json (Bottlerocket's format, docs/formats.md) offers N updates (--updates, default 1) over several
variants and arches; the node's VARIANT/ARCH appears in every release, so a node at 1.0.0 is offered the newest
release 1.R.0 (R = ceil(N / combinations)). All waves have passed. Only manifest.json is published: updog's
check-update and the TUF clients under test read nothing else, and image content would only make the fixture
bigger.

With --delegations, manifest.json is reachable only through a delegation: the top-level targets role lists no
target and delegates, in this order,
    "images"     paths ["*.lz4"]   -- lists a decoy manifest.json (offering 9.9.9) outside its paths: a client
                                      that ignores path patterns, or trusts the first role listing a name, takes it
    "delegated"  paths ["*.json"]  -- lists the real manifest.json.

Keys are fresh ed25519 keys generated here (securesystemslib's CryptoSigner); nothing is kept but the repository.
"""

import argparse
import hashlib
import json
import math
import os
import platform
import sys
from datetime import datetime, timezone

from securesystemslib.signer import CryptoSigner
from tuf.api.metadata import (
    DelegatedRole,
    Delegations,
    Metadata,
    MetaFile,
    Root,
    Snapshot,
    TargetFile,
    Targets,
    Timestamp,
)
from tuf.api.serialization.json import JSONSerializer

# Variants a realistic repository carries besides the node's own.
OTHER_VARIANTS = ["metal-dev", "aws-k8s-1.30", "vmware-k8s-1.30", "aws-ecs-2"]
ARCHES = ["x86_64", "aarch64"]
# Upstream's default wave policy keys (first seed of each wave), starting an hour apart, all in the past.
WAVE_SEEDS = [0, 20, 102, 307, 819, 1228, 1843]
WAVE_START = "2026-01-01T{hour:02}:00:00Z"


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("out_dir")
    parser.add_argument("--delegations", action="store_true")
    parser.add_argument("--consistent-snapshot", action="store_true")
    parser.add_argument("--updates", type=int, default=1)
    parser.add_argument("--variant", default="aws-dev")
    parser.add_argument("--arch", default=platform.machine())
    parser.add_argument("--expires", default="2099-12-31T00:00:00Z")
    args = parser.parse_args()
    if args.updates < 1:
        parser.error("--updates must be at least 1")
    expires = datetime.strptime(args.expires, "%Y-%m-%dT%H:%M:%SZ").replace(tzinfo=timezone.utc)

    manifest = serialize_manifest(build_manifest(args.updates, args.variant, args.arch))
    decoy = serialize_manifest(build_manifest(1, args.variant, args.arch, version="9.9.9"))

    metadata_dir = os.path.join(args.out_dir, "metadata")
    targets_dir = os.path.join(args.out_dir, "targets")
    os.makedirs(metadata_dir, exist_ok=True)
    os.makedirs(targets_dir, exist_ok=True)

    signers = {name: CryptoSigner.generate_ed25519() for name in ["root", "targets", "snapshot", "timestamp"]}

    # Targets (and the delegated roles when asked).
    manifest_file = TargetFile.from_data("manifest.json", manifest, ["sha256"])
    targets = Metadata(Targets(version=1, expires=expires))
    delegated_roles = {}
    if args.delegations:
        images_signer = CryptoSigner.generate_ed25519()
        delegated_signer = CryptoSigner.generate_ed25519()
        images = Metadata(Targets(version=1, expires=expires))
        images.signed.targets["manifest.json"] = TargetFile.from_data("manifest.json", decoy, ["sha256"])
        delegated = Metadata(Targets(version=1, expires=expires))
        delegated.signed.targets["manifest.json"] = manifest_file
        # Listed in this order on purpose: the non-matching role first (see the module doc).
        targets.signed.delegations = Delegations(
            keys={
                images_signer.public_key.keyid: images_signer.public_key,
                delegated_signer.public_key.keyid: delegated_signer.public_key,
            },
            roles={
                "images": DelegatedRole(
                    "images", [images_signer.public_key.keyid], 1, False, paths=["*.lz4"]
                ),
                "delegated": DelegatedRole(
                    "delegated", [delegated_signer.public_key.keyid], 1, False, paths=["*.json"]
                ),
            },
        )
        images.sign(images_signer)
        delegated.sign(delegated_signer)
        delegated_roles = {"images": images, "delegated": delegated}
        write_target(targets_dir, "manifest.json", decoy, args.consistent_snapshot, only_if_consistent=True)
    else:
        targets.signed.targets["manifest.json"] = manifest_file
    write_target(targets_dir, "manifest.json", manifest, args.consistent_snapshot)
    targets.sign(signers["targets"])

    # Snapshot lists every targets role by version (hashes and length are optional there).
    snapshot = Metadata(Snapshot(version=1, expires=expires))
    snapshot.signed.meta["targets.json"] = MetaFile(version=targets.signed.version)
    for name, role in delegated_roles.items():
        snapshot.signed.meta[f"{name}.json"] = MetaFile(version=role.signed.version)
    snapshot.sign(signers["snapshot"])
    snapshot_bytes = snapshot.to_bytes(JSONSerializer(compact=False))

    # Timestamp pins snapshot by version, length and hash: what keeps a client's download of it bounded.
    timestamp = Metadata(Timestamp(version=1, expires=expires))
    timestamp.signed.snapshot_meta = MetaFile(
        version=snapshot.signed.version,
        length=len(snapshot_bytes),
        hashes={"sha256": hashlib.sha256(snapshot_bytes).hexdigest()},
    )
    timestamp.sign(signers["timestamp"])

    root = Metadata(Root(expires=expires, consistent_snapshot=args.consistent_snapshot))
    for role, signer in signers.items():
        root.signed.add_key(signer.public_key, role)
    root.sign(signers["root"])

    def metadata_name(role, version):
        return f"{version}.{role}.json" if args.consistent_snapshot else f"{role}.json"

    # Root is always fetched as <version>.root.json, in both modes; timestamp never has a version.
    write_metadata(metadata_dir, "1.root.json", root.to_bytes(JSONSerializer(compact=False)))
    write_metadata(metadata_dir, "timestamp.json", timestamp.to_bytes(JSONSerializer(compact=False)))
    write_metadata(metadata_dir, metadata_name("snapshot", 1), snapshot_bytes)
    write_metadata(metadata_dir, metadata_name("targets", 1), targets.to_bytes(JSONSerializer(compact=False)))
    for name, role in delegated_roles.items():
        write_metadata(metadata_dir, metadata_name(name, 1), role.to_bytes(JSONSerializer(compact=False)))

    write_metadata(args.out_dir, "root.json", root.to_bytes(JSONSerializer(compact=False)))
    write_metadata(args.out_dir, "manifest.json", manifest)


def build_manifest(count, node_variant, node_arch, version=None):
    """`count` updates, newest release first; the node's variant/arch comes first in every release."""
    combos = [(node_variant, node_arch)]
    for variant in [node_variant] + [v for v in OTHER_VARIANTS if v != node_variant]:
        for arch in ARCHES:
            if (variant, arch) not in combos:
                combos.append((variant, arch))
    releases = math.ceil(count / len(combos))
    updates = []
    for release in range(1, releases + 1):
        for variant, arch in combos:
            if len(updates) == count:
                break
            updates.append(
                {
                    "variant": variant,
                    "arch": arch,
                    "version": version or f"1.{release}.0",
                    "max_version": None,  # filled in below: the newest of this variant/arch
                    "waves": {str(seed): WAVE_START.format(hour=hour + 1) for hour, seed in enumerate(WAVE_SEEDS)},
                    "images": {
                        part: f"bottlerocket-{variant}-{arch}-{version or f'1.{release}.0'}-pytuf-{name}.lz4"
                        for part, name in [("boot", "boot.ext4"), ("root", "root.ext4"), ("hash", "root.verity")]
                    },
                }
            )
    newest = {}
    for update in updates:
        key = (update["variant"], update["arch"])
        newest[key] = max(newest.get(key, update["version"]), update["version"], key=semver_key)
    for update in updates:
        update["max_version"] = newest[(update["variant"], update["arch"])]
    updates.reverse()
    migrations = {f"(1.{r - 1}.0, 1.{r}.0)": [] for r in range(1, releases + 1)}
    return {"updates": updates, "migrations": migrations}


def semver_key(version):
    return tuple(int(part) for part in version.split("."))


def serialize_manifest(manifest):
    # As upstream writes it: serde_json's pretty form (two-space indent), no trailing newline.
    return json.dumps(manifest, indent=2).encode()


def write_target(targets_dir, name, data, consistent, only_if_consistent=False):
    """Stores a target as the client will fetch it: `<sha256>.<name>` under consistent snapshots."""
    if consistent:
        write_metadata(targets_dir, f"{hashlib.sha256(data).hexdigest()}.{name}", data)
    elif not only_if_consistent:
        write_metadata(targets_dir, name, data)


def write_metadata(directory, name, data):
    # A fixture built before anything serves it: a plain write is enough.
    with open(os.path.join(directory, name), "wb") as f:
        f.write(data)


if __name__ == "__main__":
    try:
        main()
    except Exception as e:  # one line on stderr, as the tests print it
        print(f"make_repo.py: {type(e).__name__}: {e}", file=sys.stderr)
        sys.exit(1)
