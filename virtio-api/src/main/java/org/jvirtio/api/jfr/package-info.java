/**
 * JDK Flight Recorder events of jvirtio (category "jvirtio"): a front-end's life cycle, a device
 * that needs a reset (a ring violation), a queue stop that gave up waiting for its requests, a
 * request slower than {@code -Djvirtio.slow_request_ms} (the only one checked per request: a
 * comparison).
 * Off unless a recording asks for them ({@code -XX:StartFlightRecording}, {@code jcmd PID
 * JFR.start}); each emit point costs one check of {@code shouldCommit()} then. Rare events only.
 */
package org.jvirtio.api.jfr;
