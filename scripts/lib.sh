# Shared helpers for the project's scripts (sourced, not run).

log() { printf '\n== %s\n' "$*"; }

# apt_install PKG...: install Debian packages that are missing (as root, or via sudo).
apt_install() {
  local missing=()
  for p in "$@"; do
    dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
  done
  [ ${#missing[@]} -eq 0 ] && return 0
  local sudo=""
  [ "$(id -u)" -eq 0 ] || sudo="sudo"
  log "installing Debian packages: ${missing[*]}"
  $sudo apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq --no-install-recommends "${missing[@]}"
}

# ensure_rust: the toolchain pinned in rust-toolchain.toml, with rustfmt and clippy.
ensure_rust() {
  if ! command -v cargo >/dev/null; then
    [ -x "$HOME/.cargo/bin/cargo" ] && export PATH="$HOME/.cargo/bin:$PATH"
  fi
  command -v cargo >/dev/null || {
    echo "cargo not found: install Rust 1.95 with rustup (https://rustup.rs), then run this again" >&2
    exit 2
  }
  # clang, libbpf-dev and linux-libc-dev build the XDP program (crates/xdp/bpf).
  apt_install build-essential pkg-config ca-certificates clang libbpf-dev linux-libc-dev
  # rustup reads rust-toolchain.toml and adds the pinned components on first use.
  cargo --version >/dev/null
}

# step NAME CMD...: run a step of the suite, timed; `summary` lists them.
STEPS=()
step() {
  local name=$1
  shift
  log "$name: $*"
  local t0=$SECONDS
  "$@"
  STEPS+=("$(printf '%-18s %5ds' "$name" $((SECONDS - t0)))")
}

summary() {
  log "steps (wall time)"
  printf '  %s\n' "${STEPS[@]}"
}
