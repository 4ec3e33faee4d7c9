#!/usr/bin/env python3
"""Fetches one target with python-tuf's ngclient, the reference TUF client, for updog's interop tests.

    ngclient_fetch.py --metadata-url U --targets-url U --trusted-root F --metadata-dir D --target NAME --out F

The client workflow of the TUF specification: Updater.refresh() (root chain, timestamp, snapshot, targets),
get_targetinfo(NAME) (walking delegations), download_target() (length and hashes verified) into F. The trusted
metadata persists in D: an empty D starts from --trusted-root; a D holding root.json continues from it.
Exit 0 on success; otherwise 1 with the error on stderr.
"""

import argparse
import os
import sys

from tuf.ngclient import Updater


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--metadata-url", required=True)
    parser.add_argument("--targets-url", required=True)
    parser.add_argument("--trusted-root", required=True)
    parser.add_argument("--metadata-dir", required=True)
    parser.add_argument("--target", required=True)
    parser.add_argument("--out", required=True)
    args = parser.parse_args()

    os.makedirs(args.metadata_dir, exist_ok=True)
    # Persisted trust wins over the shipped root, as on a node; the shipped root only bootstraps an empty directory.
    bootstrap = None
    if not os.path.exists(os.path.join(args.metadata_dir, "root.json")):
        with open(args.trusted_root, "rb") as f:
            bootstrap = f.read()

    updater = Updater(
        metadata_dir=args.metadata_dir,
        metadata_base_url=args.metadata_url,
        target_base_url=args.targets_url,
        bootstrap=bootstrap,
    )
    updater.refresh()
    info = updater.get_targetinfo(args.target)
    if info is None:
        raise LookupError(f"target {args.target!r} is not listed by any trusted targets role")
    updater.download_target(info, filepath=args.out)


if __name__ == "__main__":
    try:
        main()
    except Exception as e:  # the error, one line, for the caller's assertion message
        print(f"ngclient_fetch.py: {type(e).__name__}: {e}", file=sys.stderr)
        sys.exit(1)
