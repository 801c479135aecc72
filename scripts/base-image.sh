#!/usr/bin/env bash
# A local base image for the Dockerfile where no registry image can be pulled: Debian bookworm
# (debootstrap, minbase) with Python 3.11 and venv, imported as $BASE_IMAGE. This machine's pip
# configuration (its index and the CA bundle it trusts) goes in as /etc/pip.conf, so the image's
# `pip install` reaches the same registry the host's pip does. Kept once built: delete the tag to
# rebuild it.
set -euo pipefail
BASE_IMAGE=${BASE_IMAGE:-menuflow-base:bookworm}
MIRROR=${DEBIAN_MIRROR:-http://deb.debian.org/debian}

if docker image inspect "$BASE_IMAGE" >/dev/null 2>&1; then
    echo "base image $BASE_IMAGE exists"
    exit 0
fi
case "$BASE_IMAGE" in
    menuflow-base:*) ;;
    *) echo "base image $BASE_IMAGE: left to docker build to pull"; exit 0 ;;
esac
command -v debootstrap >/dev/null || { apt-get update -qq && apt-get install -y -qq debootstrap; }

root=$(mktemp -d)
trap 'rm -rf "$root"' EXIT
debootstrap --variant=minbase --include=python3,python3-venv,ca-certificates \
    bookworm "$root" "$MIRROR"
rm -rf "$root"/var/cache/apt/archives/*.deb "$root"/var/lib/apt/lists/* \
    "$root"/usr/share/doc "$root"/usr/share/man "$root"/usr/share/locale

# pip's own settings on this machine (files and PIP_* variables): its index, the extra indexes
# reached over the network (not file:// ones), and the CA bundle it trusts.
python3 - "$root" <<'PY'
import re, shutil, subprocess, sys
listed = subprocess.run(
    [sys.executable, "-m", "pip", "config", "list"], capture_output=True, text=True
).stdout
found = dict(re.findall(r"^(?:global|:env:)\.([\w-]+)='(.*)'$", listed, flags=re.MULTILINE))
lines = ["[global]"]
if found.get("index-url"):
    lines.append(f"index-url = {found['index-url']}")
extra = [url for url in found.get("extra-index-url", "").split() if not url.startswith("file:")]
if extra:
    lines.append("extra-index-url = " + " ".join(extra))
if found.get("cert"):
    shutil.copy(found["cert"], f"{sys.argv[1]}/etc/ssl/certs/pip-ca.pem")
    lines.append("cert = /etc/ssl/certs/pip-ca.pem")
with open(f"{sys.argv[1]}/etc/pip.conf", "w") as conf:
    conf.write("\n".join(lines) + "\n")
PY

tar -C "$root" -c . | docker import \
    -c 'ENV LANG=C.UTF-8' -c 'CMD ["python3"]' - "$BASE_IMAGE"
docker image ls "$BASE_IMAGE"
