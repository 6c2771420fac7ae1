#!/usr/bin/python3
"""Writes OCI image layouts for the local registry fixture (see tools/registry/README.md).

Standard library only. Output is reproducible: entries are sorted, owners are numeric, modification
times are clamped, and gzip headers carry no name or time, so the same input tree gives the same
digests.

Subcommands:
  epoch ROOT
      Prints the newest modification time of the files the Debian packages in ROOT shipped. Files
      written at install time are newer; clamping to this value makes them reproducible.
  layer --layout DIR --root ROOT [--base BASE] [--clamp T] [--root-owned]
      Writes ROOT (or, with --base, what changed from BASE to ROOT, deletions as whiteouts) as a
      gzip layer blob into the layout and prints its descriptor as JSON.
  image --layout DIR --layers FILE --config FILE --tag TAG... [--annotation K=V...]
      Writes the config, the manifest and an image index (one platform) and points the layout's
      index.json tags at the index.
"""

import argparse
import datetime
import glob
import gzip
import hashlib
import json
import os
import stat
import sys
import tarfile
import tempfile

MEDIA_INDEX = "application/vnd.oci.image.index.v1+json"
MEDIA_MANIFEST = "application/vnd.oci.image.manifest.v1+json"
MEDIA_CONFIG = "application/vnd.oci.image.config.v1+json"
MEDIA_LAYER_GZIP = "application/vnd.oci.image.layer.v1.tar+gzip"
REF_NAME = "org.opencontainers.image.ref.name"

# Never part of a layer: the runtime mounts its own /dev, /proc and /sys; the directories stay.
SKIP_CONTENTS = ("dev", "proc", "sys")


class HashingWriter:
    """A write-only file object that hashes and counts what passes through it."""

    def __init__(self, sink):
        self.sink = sink
        self.sha = hashlib.sha256()
        self.size = 0

    def write(self, data):
        self.sha.update(data)
        self.size += len(data)
        if self.sink is not None:
            self.sink.write(data)
        return len(data)

    def flush(self):
        if self.sink is not None:
            self.sink.flush()


def die(msg):
    print("oci.py: " + msg, file=sys.stderr)
    sys.exit(1)


def blob_path(layout, digest):
    algo, hexd = digest.split(":", 1)
    return os.path.join(layout, "blobs", algo, hexd)


def write_blob(layout, data):
    digest = "sha256:" + hashlib.sha256(data).hexdigest()
    path = blob_path(layout, digest)
    os.makedirs(os.path.dirname(path), exist_ok=True)
    with open(path + ".tmp", "wb") as f:
        f.write(data)
    os.replace(path + ".tmp", path)
    return digest, len(data)


def canonical_json(obj):
    return json.dumps(obj, sort_keys=True, separators=(",", ":")).encode()


def walk(root):
    """Yields relative paths under root in sorted order, parents before children."""
    def rec(rel):
        full = os.path.join(root, rel) if rel else root
        names = sorted(os.listdir(full))
        for name in names:
            child = os.path.join(rel, name) if rel else name
            yield child
            st = os.lstat(os.path.join(root, child))
            if stat.S_ISDIR(st.st_mode) and child not in SKIP_CONTENTS:
                yield from rec(child)
    yield from rec("")


def lstat_or_none(path):
    try:
        return os.lstat(path)
    except FileNotFoundError:
        return None


def same_file_content(a, b, size):
    if size == 0:
        return True
    with open(a, "rb") as fa, open(b, "rb") as fb:
        while True:
            x = fa.read(1 << 20)
            y = fb.read(1 << 20)
            if x != y:
                return False
            if not x:
                return True


def metadata(st, clamp):
    return (stat.S_IFMT(st.st_mode), stat.S_IMODE(st.st_mode), st.st_uid, st.st_gid,
            min(int(st.st_mtime), clamp))


def changed(root, base, rel, st, clamp):
    """Whether rel differs between base and root (after clamping times)."""
    bst = lstat_or_none(os.path.join(base, rel))
    if bst is None or metadata(st, clamp) != metadata(bst, clamp):
        return True
    if stat.S_ISREG(st.st_mode):
        return st.st_size != bst.st_size or not same_file_content(
            os.path.join(root, rel), os.path.join(base, rel), st.st_size)
    if stat.S_ISLNK(st.st_mode):
        return os.readlink(os.path.join(root, rel)) != os.readlink(os.path.join(base, rel))
    if stat.S_ISCHR(st.st_mode) or stat.S_ISBLK(st.st_mode):
        return st.st_rdev != bst.st_rdev
    return False


def whiteouts(root, base):
    """Paths of base that are gone from root; only the topmost of a removed subtree."""
    out = []

    def rec(rel):
        for name in sorted(os.listdir(os.path.join(base, rel) if rel else base)):
            child = os.path.join(rel, name) if rel else name
            st = lstat_or_none(os.path.join(root, child))
            if st is None:
                out.append(child)
                continue
            # A directory replaced by something else needs no whiteouts: the new entry replaces
            # the whole subtree.
            bst = os.lstat(os.path.join(base, child))
            if stat.S_ISDIR(bst.st_mode) and stat.S_ISDIR(st.st_mode) and child not in SKIP_CONTENTS:
                rec(child)

    rec("")
    return out


def select_entries(root, base, clamp):
    """Relative paths of root to put in the layer, with the ancestors of each changed entry."""
    if base is None:
        return list(walk(root))
    picked = set()
    for rel in walk(root):
        st = os.lstat(os.path.join(root, rel))
        if changed(root, base, rel, st, clamp):
            picked.add(rel)
            parent = os.path.dirname(rel)
            while parent and parent not in picked:
                picked.add(parent)
                parent = os.path.dirname(parent)
    return sorted(picked, key=lambda p: p.split("/"))


def tarinfo(root, rel, st, clamp, root_owned):
    ti = tarfile.TarInfo(rel)
    ti.mode = stat.S_IMODE(st.st_mode)
    ti.uid, ti.gid = (0, 0) if root_owned else (st.st_uid, st.st_gid)
    ti.uname = ti.gname = ""
    ti.mtime = min(int(st.st_mtime), clamp)
    fmt = stat.S_IFMT(st.st_mode)
    if fmt == stat.S_IFREG:
        ti.type, ti.size = tarfile.REGTYPE, st.st_size
    elif fmt == stat.S_IFDIR:
        ti.type = tarfile.DIRTYPE
    elif fmt == stat.S_IFLNK:
        ti.type, ti.linkname = tarfile.SYMTYPE, os.readlink(os.path.join(root, rel))
    elif fmt in (stat.S_IFCHR, stat.S_IFBLK):
        ti.type = tarfile.CHRTYPE if fmt == stat.S_IFCHR else tarfile.BLKTYPE
        ti.devmajor, ti.devminor = os.major(st.st_rdev), os.minor(st.st_rdev)
    elif fmt == stat.S_IFIFO:
        ti.type = tarfile.FIFOTYPE
    else:
        return None  # sockets have no place in an image
    # File capabilities are the one extended attribute a package may rely on.
    xattrs = {}
    if fmt == stat.S_IFREG:
        try:
            value = os.getxattr(os.path.join(root, rel), "security.capability",
                                follow_symlinks=False)
            xattrs["SCHILY.xattr.security.capability"] = value.decode("utf-8", "surrogateescape")
        except OSError:
            pass  # none, or no xattr support
    if xattrs:
        ti.pax_headers = xattrs
    return ti


def cmd_epoch(args):
    newest = 0
    for listing in glob.glob(os.path.join(args.root, "var/lib/dpkg/info/*.list")):
        with open(listing, encoding="utf-8", errors="surrogateescape") as f:
            for line in f:
                path = line.rstrip("\n")
                st = lstat_or_none(os.path.join(args.root, path.lstrip("/")))
                if st is not None and stat.S_ISREG(st.st_mode):
                    newest = max(newest, int(st.st_mtime))
    if newest == 0:
        die("no files of Debian packages under " + args.root)
    print(newest)


def cmd_layer(args):
    clamp = args.clamp if args.clamp is not None else 2**63
    entries = select_entries(args.root, args.base, clamp)
    removed = whiteouts(args.root, args.base) if args.base is not None else []
    # Whiteouts sort next to the entries of their directory.
    items = [(rel.split("/"), rel, False) for rel in entries]
    for rel in removed:
        parent, name = os.path.split(rel)
        wh = os.path.join(parent, ".wh." + name)
        items.append((wh.split("/"), wh, True))
    items.sort(key=lambda it: it[0])

    os.makedirs(os.path.join(args.layout, "blobs", "sha256"), exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=os.path.join(args.layout, "blobs", "sha256"), suffix=".tmp")
    os.fchmod(fd, 0o644)
    links = {}
    try:
        with os.fdopen(fd, "wb") as out:
            compressed = HashingWriter(out)
            with gzip.GzipFile(filename="", mode="wb", compresslevel=args.level,
                               fileobj=compressed, mtime=0) as gz:
                plain = HashingWriter(gz)
                with tarfile.open(fileobj=plain, mode="w|", format=tarfile.PAX_FORMAT) as tar:
                    for _, rel, is_whiteout in items:
                        if is_whiteout:
                            ti = tarfile.TarInfo(rel)
                            ti.mode, ti.uname, ti.gname = 0o644, "", ""
                            ti.mtime = args.clamp or 0
                            tar.addfile(ti)
                            continue
                        st = os.lstat(os.path.join(args.root, rel))
                        ti = tarinfo(args.root, rel, st, clamp, args.root_owned)
                        if ti is None:
                            continue
                        if ti.type == tarfile.REGTYPE and st.st_nlink > 1:
                            key = (st.st_dev, st.st_ino)
                            if key in links:
                                ti.type, ti.size, ti.linkname = tarfile.LNKTYPE, 0, links[key]
                                tar.addfile(ti)
                                continue
                            links[key] = rel
                        if ti.type == tarfile.REGTYPE:
                            with open(os.path.join(args.root, rel), "rb") as f:
                                tar.addfile(ti, f)
                        else:
                            tar.addfile(ti)
        digest = "sha256:" + compressed.sha.hexdigest()
        os.replace(tmp, blob_path(args.layout, digest))
    except BaseException:
        os.unlink(tmp)
        raise
    json.dump({"mediaType": MEDIA_LAYER_GZIP, "digest": digest, "size": compressed.size,
               "diff_id": "sha256:" + plain.sha.hexdigest(), "uncompressed_size": plain.size,
               "entries": len(items), "created_by": args.created_by}, sys.stdout)
    print()


def cmd_image(args):
    with open(args.layers) as f:
        layers = [json.loads(line) for line in f if line.strip()]
    with open(args.config) as f:
        spec = json.load(f)
    created = datetime.datetime.fromtimestamp(spec["created"], datetime.timezone.utc)
    created = created.strftime("%Y-%m-%dT%H:%M:%SZ")
    config = {
        "created": created,
        "architecture": spec["architecture"],
        "os": "linux",
        "config": spec["config"],
        "rootfs": {"type": "layers", "diff_ids": [l["diff_id"] for l in layers]},
        "history": [{"created": created, "created_by": l["created_by"]} for l in layers],
    }
    config_digest, config_size = write_blob(args.layout, canonical_json(config))
    annotations = dict(a.split("=", 1) for a in args.annotation)
    manifest = {
        "schemaVersion": 2,
        "mediaType": MEDIA_MANIFEST,
        "config": {"mediaType": MEDIA_CONFIG, "digest": config_digest, "size": config_size},
        "layers": [{"mediaType": l["mediaType"], "digest": l["digest"], "size": l["size"]}
                   for l in layers],
    }
    if annotations:
        manifest["annotations"] = annotations
    manifest_digest, manifest_size = write_blob(args.layout, canonical_json(manifest))
    index = {
        "schemaVersion": 2,
        "mediaType": MEDIA_INDEX,
        "manifests": [{
            "mediaType": MEDIA_MANIFEST,
            "digest": manifest_digest,
            "size": manifest_size,
            "platform": {"architecture": spec["architecture"], "os": "linux"},
        }],
    }
    index_digest, index_size = write_blob(args.layout, canonical_json(index))
    top = {
        "schemaVersion": 2,
        "manifests": [{"mediaType": MEDIA_INDEX, "digest": index_digest, "size": index_size,
                       "annotations": {REF_NAME: tag}} for tag in args.tag],
    }
    with open(os.path.join(args.layout, "index.json"), "wb") as f:
        f.write(canonical_json(top))
    with open(os.path.join(args.layout, "oci-layout"), "wb") as f:
        f.write(canonical_json({"imageLayoutVersion": "1.0.0"}))
    print(index_digest)


def main():
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    sub = p.add_subparsers(dest="cmd", required=True)
    e = sub.add_parser("epoch")
    e.add_argument("root")
    l = sub.add_parser("layer")
    l.add_argument("--layout", required=True)
    l.add_argument("--root", required=True)
    l.add_argument("--base")
    l.add_argument("--clamp", type=int)
    l.add_argument("--level", type=int, default=6)
    l.add_argument("--root-owned", action="store_true")
    l.add_argument("--created-by", default="", help="recorded in the image history")
    i = sub.add_parser("image")
    i.add_argument("--layout", required=True)
    i.add_argument("--layers", required=True, help="layer descriptors, one JSON per line")
    i.add_argument("--config", required=True, help="JSON: created, architecture, config")
    i.add_argument("--tag", action="append", required=True)
    i.add_argument("--annotation", action="append", default=[])
    args = p.parse_args()
    {"epoch": cmd_epoch, "layer": cmd_layer, "image": cmd_image}[args.cmd](args)


if __name__ == "__main__":
    main()
