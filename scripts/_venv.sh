# Sourced by the scripts beside it: create the virtualenv once, install the project into it.
# Usage: install_project [EXTRAS]   (sets $venv)
venv="${CDM_VENV:-.venv}"

install_project() {
    local target="."
    [ -n "${1:-}" ] && target=".[$1]"
    if [ ! -x "$venv/bin/python" ]; then
        python3 -m venv "$venv"
    fi
    "$venv/bin/python" -m pip install --quiet --upgrade pip
    "$venv/bin/python" -m pip install --quiet -e "$target"
    # An editable install compiles nothing, and where PYTHONDONTWRITEBYTECODE is set (some
    # containers) every server worker would compile our modules again at each start (~80 ms).
    "$venv/bin/python" -m compileall -q -j 0 api cdm domain ingestion ml sql >/dev/null || true
}
