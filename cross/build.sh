#!/usr/bin/env bash
# Cross-compiles linegate-edge for the line PCs, every C dependency (librdkafka, SQLite, zlib, zstd) built in.
#
#   cross/build.sh                      all three targets
#   cross/build.sh TRIPLE...            some of them: x86_64-unknown-linux-musl, aarch64-unknown-linux-gnu,
#                                       armv7-unknown-linux-gnueabihf
#   options: --no-install (do not add rustup targets or Debian packages; fail if one is missing)
#
# Installs what it needs first, idempotently (rustup targets; Debian's cross gcc, musl-tools, file, and
# qemu-user-static for the tests), as root or with sudo. Builds `cargo build --release -p linegate-edge
# --target T` into its own target directory ($LINEGATE_CROSS_TARGET_DIR, default target/cross; never the host
# one), copies each stripped binary to dist/bin/<triple>/linegate-edge and prints their sizes and build times.
#
# x86_64-unknown-linux-musl is fully static. Debian has no aarch64/armv7 musl compiler, so those two are
# -linux-gnu: the C libraries are built in statically, glibc is linked dynamically (see cross/README.md for
# the glibc version each needs).
set -euo pipefail
cd "$(dirname "$0")/.."

all_targets=(x86_64-unknown-linux-musl aarch64-unknown-linux-gnu armv7-unknown-linux-gnueabihf)
targets=()
install=1
die() { echo "build.sh: $*" >&2; exit 2; }
while [ $# -gt 0 ]; do
  case "$1" in
    --no-install) install=0; shift ;;
    -h | --help) sed -n '2,17s/^# \{0,1\}//p' "$0"; exit 0 ;;
    x86_64-unknown-linux-musl | aarch64-unknown-linux-gnu | armv7-unknown-linux-gnueabihf) targets+=("$1"); shift ;;
    *) die "unknown target or option '$1' (targets: ${all_targets[*]})" ;;
  esac
done
[ ${#targets[@]} -gt 0 ] || targets=("${all_targets[@]}")

# The C compiler prefix (Debian's cross toolchain) and the Debian packages each target needs.
prefix_of() {
  case "$1" in
    x86_64-unknown-linux-musl) echo "" ;;
    aarch64-unknown-linux-gnu) echo aarch64-linux-gnu- ;;
    armv7-unknown-linux-gnueabihf) echo arm-linux-gnueabihf- ;;
  esac
}
packages_of() {
  case "$1" in
    x86_64-unknown-linux-musl) echo musl-tools g++ ;;
    # librdkafka's CMake project enables C++ (it also builds librdkafka++, which is not linked in).
    aarch64-unknown-linux-gnu) echo gcc-aarch64-linux-gnu g++-aarch64-linux-gnu ;;
    armv7-unknown-linux-gnueabihf) echo gcc-arm-linux-gnueabihf g++-arm-linux-gnueabihf ;;
  esac
}

as_root() {
  if [ "$(id -u)" -eq 0 ]; then "$@"; elif command -v sudo >/dev/null; then sudo "$@"; else
    echo "build.sh: need root (or sudo) to run: $*" >&2; exit 1
  fi
}

export PATH="$HOME/.cargo/bin:$PATH"
command -v cargo >/dev/null || die "cargo not found: run scripts/setup.sh first"

# Debian packages: the cross compilers, plus what the tests use on the binaries (file, readelf, qemu-user-static).
wanted=(file binutils qemu-user-static cmake)
for target in "${targets[@]}"; do
  read -ra pkgs <<<"$(packages_of "$target")"
  wanted+=("${pkgs[@]}")
done
missing=()
for pkg in "${wanted[@]}"; do
  dpkg -s "$pkg" >/dev/null 2>&1 || missing+=("$pkg")
done
if [ ${#missing[@]} -gt 0 ]; then
  [ "$install" -eq 1 ] || die "missing Debian packages: ${missing[*]}"
  echo "build.sh: installing Debian packages: ${missing[*]}"
  as_root apt-get update -q
  as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends "${missing[@]}"
fi

# Rust standard libraries of the targets.
if command -v rustup >/dev/null; then
  installed=$(rustup target list --installed)
  for target in "${targets[@]}"; do
    if ! grep -qx "$target" <<<"$installed"; then
      [ "$install" -eq 1 ] || die "rustup target $target missing"
      rustup target add "$target"
    fi
  done
fi

target_dir=${LINEGATE_CROSS_TARGET_DIR:-$PWD/target/cross}
# Cargo's and cc's per-target variables. zlib is built from source for every target (libz-sys would link the
# host's libz.so otherwise, which is neither static nor of the target's architecture).
export LIBZ_SYS_STATIC=1
configure() {
  local target=$1 prefix upper lower
  prefix=$(prefix_of "$target")
  upper=$(tr 'a-z-' 'A-Z_' <<<"$target")
  lower=${target//-/_}
  # librdkafka includes <curl/curl.h> although it is built without curl: cross/include/curl/curl.h is empty.
  export "CFLAGS_$lower=-isystem $PWD/cross/include"
  if [ "$target" = x86_64-unknown-linux-musl ]; then
    # C code is compiled against musl's headers; rustc links with its own self-contained musl crt and libc.
    # C++: only for CMake's check of librdkafka++ (not linked); the host g++ passes it.
    export "CC_$lower=musl-gcc" "CXX_$lower=g++" "AR_$lower=ar"
    strip="strip"
  else
    export "CC_$lower=${prefix}gcc" "CXX_$lower=${prefix}g++" "AR_$lower=${prefix}ar"
    export "CARGO_TARGET_${upper}_LINKER=${prefix}gcc"
    strip=${prefix}strip
  fi
}

declare -A seconds
for target in "${targets[@]}"; do
  configure "$target"
  echo "build.sh: building $target into $target_dir"
  start=$SECONDS
  cargo build --release --locked -p linegate-edge --target "$target" --target-dir "$target_dir"
  seconds[$target]=$((SECONDS - start))
  mkdir -p "dist/bin/$target"
  "$strip" -o "dist/bin/$target/linegate-edge.tmp" "$target_dir/$target/release/linegate-edge"
  mv "dist/bin/$target/linegate-edge.tmp" "dist/bin/$target/linegate-edge"
done

printf '\n%-32s %10s %8s  %s\n' target bytes MiB "build s"
for target in "${targets[@]}"; do
  bytes=$(stat -c %s "dist/bin/$target/linegate-edge")
  printf '%-32s %10d %8.1f  %s\n' "$target" "$bytes" "$(awk "BEGIN { print $bytes / 1048576 }")" "${seconds[$target]}"
done
for target in "${targets[@]}"; do
  echo "dist/bin/$target/linegate-edge: $(file -b "dist/bin/$target/linegate-edge")"
done
