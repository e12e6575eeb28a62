#!/usr/bin/env bash
# Check JupyCell's MCP server with a second, independent client: the MCP Inspector CLI (npm).
#   scripts/mcp-inspector-check.sh http://127.0.0.1:8000 [API_KEY]
# Lists the tools, starts a kernel, keeps state across two execute_code calls, gets a plot as image content and an
# exception as an error result, then shuts the kernel down. Exits non-zero on the first thing that does not behave.
# Needs node (>= 18) and npm; installs the Inspector into a temporary directory, touches nothing else.
set -euo pipefail
base="${1:?usage: $0 URL [API_KEY]}"
key="${2:-}"
work="$(mktemp -d)"
trap 'rm -rf "$work"' EXIT
(cd "$work" && npm install --silent --no-audit --no-fund @modelcontextprotocol/inspector@2 >/dev/null)

inspect() {  # inspect ARGS...: one Inspector CLI call against $base/mcp, its JSON on stdout
    local auth=()
    [[ -n "$key" ]] && auth=(--header "Authorization: Bearer $key")
    (cd "$work" && npx --no-install mcp-inspector --cli "$base/mcp" --transport http "${auth[@]}" "$@")
}
check() {  # check NAME PYTHON-EXPRESSION < JSON: fail unless the expression (over `r`) is true
    python3 -c 'import json, sys
r = json.load(sys.stdin)
if not eval(sys.argv[2]):
    sys.exit(f"mcp-inspector-check: FAILED {sys.argv[1]}: {json.dumps(r)[:2000]}")
print(f"mcp-inspector-check: ok   {sys.argv[1]}")' "$1" "$2"
}

inspect --method tools/list | check "tools/list has the 15 tools" \
    '{t["name"] for t in r["tools"]} == {"start_kernel", "list_kernels", "execute_code", "add_cell", "edit_cell",
      "run_cell", "run_all", "delete_cell", "list_cells", "read_cell", "upload_file", "download_file",
      "interrupt_kernel", "restart_kernel", "shutdown_kernel"}'
started="$(inspect --method tools/call --tool-name start_kernel)"
kernel="$(python3 -c 'import json, sys; print(json.load(sys.stdin)["structuredContent"]["kernel_id"])' <<<"$started")"
echo "mcp-inspector-check: ok   start_kernel -> $kernel"
trap 'inspect --method tools/call --tool-name shutdown_kernel --tool-arg "kernel_id=$kernel" >/dev/null || true; rm -rf "$work"' EXIT

inspect --method tools/call --tool-name execute_code --tool-arg "kernel_id=$kernel" "code=x = 6 * 7" \
    | check "execute_code x = 6 * 7" 'not r["isError"] and r["structuredContent"]["cell_number"] == 1'
inspect --method tools/call --tool-name execute_code --tool-arg "kernel_id=$kernel" "code=print(x)" \
    | check "state kept: print(x) -> 42" 'r["content"][0]["text"] == "42\n"'
inspect --method tools/call --tool-name execute_code --tool-arg "kernel_id=$kernel" \
    "code=import matplotlib.pyplot as plt; plt.plot([1, 3, 2]); plt.show()" \
    | check "a plot is image content" 'r["content"][0]["type"] == "image" and r["content"][0]["mimeType"] == "image/png"'
# The Inspector exits non-zero (tool_is_error) for an error result: that is the expected outcome here.
{ inspect --method tools/call --tool-name execute_code --tool-arg "kernel_id=$kernel" "code=1 / 0" 2>/dev/null || true; } \
    | check "an exception is an error result" 'r["isError"] and "ZeroDivisionError" in r["content"][0]["text"]'
inspect --method tools/call --tool-name list_cells --tool-arg "kernel_id=$kernel" \
    | check "list_cells shows 4 cells at version 4" 'len(r["structuredContent"]["cells"]) == 4 and r["structuredContent"]["version"] == 4'
inspect --method tools/call --tool-name shutdown_kernel --tool-arg "kernel_id=$kernel" \
    | check "shutdown_kernel" 'not r["isError"]'
trap 'rm -rf "$work"' EXIT
echo "mcp-inspector-check: all checks passed"
