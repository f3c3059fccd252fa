# Sourced by the launchers in bin/: sets JAVA_HOME to a JDK 25 or newer, or exits 2 with one line.
# Order: $JAVA_HOME if it is 25+, then /usr/lib/jvm/*, then the `java` on PATH.

jvirtio_java_major() { # sets jvirtio_major to the feature version of the JDK in directory $1, or ""
  # Its release file says (JAVA_VERSION="25.0.1"), read with the shell's own builtins: no
  # process before the JVM (a launcher's time counts: issue 13). A JDK without one is asked (a
  # JVM start, ~50 ms).
  local line
  jvirtio_major=""
  if [ -f "$1/release" ]; then
    while IFS= read -r line; do
      if [[ $line =~ ^JAVA_VERSION=\"([0-9]+) ]]; then
        jvirtio_major=${BASH_REMATCH[1]}
        [ "$jvirtio_major" = 1 ] && jvirtio_major=""  # 1.8-style: too old anyway
        return
      fi
    done < "$1/release"
  fi
  jvirtio_major=$("$1/bin/java" -XshowSettings:properties -version 2>&1 | sed -n 's/^ *java\.specification\.version = \([0-9]*\).*/\1/p' | head -n 1)
}

jvirtio_find_jdk25() { # sets JAVA_HOME, or returns 1
  local candidate java
  java=$(command -v java 2>/dev/null) || java=""
  for candidate in "${JAVA_HOME:-}" /usr/lib/jvm/* "${java:+PATH}"; do
    [ "$candidate" = PATH ] && candidate=$(dirname "$(dirname "$(readlink -f "$java")")")
    [ -n "$candidate" ] && [ -x "$candidate/bin/java" ] && [ -x "$candidate/bin/javac" ] || continue
    jvirtio_java_major "$candidate"
    if [ -n "$jvirtio_major" ] && [ "$jvirtio_major" -ge 25 ]; then
      JAVA_HOME=$candidate
      return 0
    fi
  done
  return 1
}

if ! jvirtio_find_jdk25; then
  echo "jvirtio: no JDK 25 found (looked at \$JAVA_HOME, /usr/lib/jvm/*, PATH); install one (e.g. apt-get install temurin-25-jdk) or set JAVA_HOME to it" >&2
  exit 2
fi
export JAVA_HOME
export PATH="$JAVA_HOME/bin:$PATH"
# Maven's own bundled Guava touches sun.misc.Unsafe; keep its warning out of every build log.
export MAVEN_OPTS="${MAVEN_OPTS:-} --sun-misc-unsafe-memory-access=allow"
