# Sourced by the launchers in bin/: sets JAVA_HOME to a JDK 25 or newer, or exits 2 with one line.
# Order: $JAVA_HOME if it is 25+, then /usr/lib/jvm/*, then the `java` on PATH.

jvirtio_java_major() { # prints the feature version of the JDK in directory $1, or nothing
  # Its release file says (JAVA_VERSION="25.0.1"): no JVM started before ours. A JDK without
  # one is asked (a JVM start, ~50 ms).
  local v
  if [ -f "$1/release" ]; then
    v=$(sed -n 's/^JAVA_VERSION="\([0-9]*\).*/\1/p' "$1/release")
    [ "$v" = 1 ] && v=""  # 1.8-style: too old anyway
    [ -n "$v" ] && { echo "$v"; return; }
  fi
  "$1/bin/java" -XshowSettings:properties -version 2>&1 | sed -n 's/^ *java\.specification\.version = \([0-9]*\).*/\1/p' | head -n 1
}

jvirtio_find_jdk25() {
  local candidate major
  for candidate in "${JAVA_HOME:-}" /usr/lib/jvm/* "$(dirname "$(dirname "$(readlink -f "$(command -v java 2>/dev/null || echo /nonexistent)")")")"; do
    [ -n "$candidate" ] && [ -x "$candidate/bin/java" ] && [ -x "$candidate/bin/javac" ] || continue
    major=$(jvirtio_java_major "$candidate")
    if [ -n "$major" ] && [ "$major" -ge 25 ]; then
      echo "$candidate"
      return 0
    fi
  done
  return 1
}

if ! JAVA_HOME=$(jvirtio_find_jdk25); then
  echo "jvirtio: no JDK 25 found (looked at \$JAVA_HOME, /usr/lib/jvm/*, PATH); install one (e.g. apt-get install temurin-25-jdk) or set JAVA_HOME to it" >&2
  exit 2
fi
export JAVA_HOME
export PATH="$JAVA_HOME/bin:$PATH"
# Maven's own bundled Guava touches sun.misc.Unsafe; keep its warning out of every build log.
export MAVEN_OPTS="${MAVEN_OPTS:-} --sun-misc-unsafe-memory-access=allow"
