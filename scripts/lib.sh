# SPDX-License-Identifier: MIT
# Shared by scripts/check and scripts/demo: narrate and install missing
# Debian packages listed in scripts/deps.
step() { printf '\n==> %s\n' "$*"; }

deps_list() { sed 's/#.*//' "$here/scripts/deps" | tr -s ' \t' '\n' | sed '/^$/d'; }

ensure_deps() {
        local missing=() p
        for p in $(deps_list); do
                dpkg-query -W -f '${Status}' "$p" 2>/dev/null | grep -q 'ok installed' || missing+=("$p")
        done
        [ ${#missing[@]} -eq 0 ] && return 0
        step "installing missing packages: ${missing[*]}"
        local sudo=
        [ "$(id -u)" -ne 0 ] && sudo=sudo
        $sudo apt-get update -qq || return 1
        DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq --no-install-recommends "${missing[@]}" || return 1
}
