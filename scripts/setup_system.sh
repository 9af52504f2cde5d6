#!/usr/bin/env bash
# Installs the Debian packages the pipeline needs when missing: headless OpenGL (EGL/Mesa
# llvmpipe and OSMesa) for pyrender, and sweethome3d-furniture (real CC0/CC-BY furniture CAD,
# five .sh3f catalogs in /usr/share/sweethome3d/furniture) for the catalog's `sweethome3d` source.
# Idempotent: prints one line and exits when everything is present.
set -euo pipefail

need=()
why=()
gl=()
have_lib() { ldconfig -p 2>/dev/null | grep -q "$1"; }
have_lib 'libEGL.so.1'        || gl+=(libegl1)
have_lib 'libEGL_mesa.so.0'   || gl+=(libegl-mesa0)
have_lib 'libGL.so.1'         || gl+=(libgl1)
have_lib 'libOSMesa.so'       || gl+=(libosmesa6)
[ -e /usr/lib/x86_64-linux-gnu/dri/swrast_dri.so ] || [ -e /usr/lib/aarch64-linux-gnu/dri/swrast_dri.so ] \
  || ls /usr/lib/*/dri/swrast_dri.so >/dev/null 2>&1 || gl+=(libgl1-mesa-dri)
if [ ${#gl[@]} -gt 0 ]; then
  need+=("${gl[@]}")
  why+=("headless OpenGL for pyrender")
fi
if [ ! -d /usr/share/sweethome3d/furniture ]; then
  need+=(sweethome3d-furniture)
  why+=("real CC0/CC-BY furniture CAD for the catalog, in /usr/share/sweethome3d/furniture")
fi

if [ ${#need[@]} -eq 0 ]; then
  echo "system: headless OpenGL libraries present (EGL/Mesa, OSMesa); Sweet Home 3D furniture present"
  exit 0
fi

reasons=$(IFS=';'; echo "${why[*]}")
echo "system: installing ${need[*]} (${reasons//;/; })"
SUDO=""
if [ "$(id -u)" -ne 0 ]; then
  if command -v sudo >/dev/null; then SUDO="sudo"; else
    echo "system: not root and no sudo; please run: apt-get install -y ${need[*]}" >&2; exit 1
  fi
fi
export DEBIAN_FRONTEND=noninteractive
$SUDO apt-get update -qq
$SUDO apt-get install -y -qq --no-install-recommends "${need[@]}"
