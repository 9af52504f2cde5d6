#!/usr/bin/env bash
# Installs the Debian packages headless OpenGL needs (EGL/Mesa llvmpipe and OSMesa) when missing.
# Idempotent: prints one line and exits when everything is present.
set -euo pipefail

need=()
have_lib() { ldconfig -p 2>/dev/null | grep -q "$1"; }
have_lib 'libEGL.so.1'        || need+=(libegl1)
have_lib 'libEGL_mesa.so.0'   || need+=(libegl-mesa0)
have_lib 'libGL.so.1'         || need+=(libgl1)
have_lib 'libOSMesa.so'       || need+=(libosmesa6)
[ -e /usr/lib/x86_64-linux-gnu/dri/swrast_dri.so ] || [ -e /usr/lib/aarch64-linux-gnu/dri/swrast_dri.so ] \
  || ls /usr/lib/*/dri/swrast_dri.so >/dev/null 2>&1 || need+=(libgl1-mesa-dri)

if [ ${#need[@]} -eq 0 ]; then
  echo "system: headless OpenGL libraries present (EGL/Mesa, OSMesa)"
  exit 0
fi

echo "system: installing ${need[*]} (headless OpenGL for pyrender)"
SUDO=""
if [ "$(id -u)" -ne 0 ]; then
  if command -v sudo >/dev/null; then SUDO="sudo"; else
    echo "system: not root and no sudo; please run: apt-get install -y ${need[*]}" >&2; exit 1
  fi
fi
export DEBIAN_FRONTEND=noninteractive
$SUDO apt-get update -qq
$SUDO apt-get install -y -qq --no-install-recommends "${need[@]}"
