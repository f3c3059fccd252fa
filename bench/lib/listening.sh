# Sourced by the bench scripts. await_listening SOCK [PID]: waits up to 60 s (a first launch of
# bin/vhost-user builds the jars) until a process listens on the Unix socket SOCK: its line in
# /proc/net/unix carries __SO_ACCEPTCON (0x10000), or the socket file is there and no line names
# it (a socket bound under another name and renamed into place once it listened, as jvirtio's
# backend does: /proc keeps the name it was bound to). qemu-storage-daemon creates the socket file
# when it binds and listens a moment later, so a client started because the file exists can be
# refused (CI saw it in a test). Returns 1, saying why, when PID exits first or the time runs out.
await_listening() {
  local sock pid=${2:-} i num ref proto flags rest path
  sock=$(realpath -m "$1")
  for i in $(seq 1200); do
    local named=0
    while read -r num ref proto flags rest; do
      path=${rest##* }
      if [ "$path" = "$sock" ]; then
        (( 16#$flags & 0x10000 )) && return 0
        named=1
      fi
    done < <(tail -n +2 /proc/net/unix)
    [ $named = 0 ] && [ -S "$sock" ] && return 0
    if [ -n "$pid" ] && ! kill -0 "$pid" 2>/dev/null; then
      echo "the process $pid ended before it listened on $sock" >&2
      return 1
    fi
    sleep 0.05
  done
  echo "nothing listens on $sock after 60 s" >&2
  return 1
}
