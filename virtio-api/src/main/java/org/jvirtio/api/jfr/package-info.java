/**
 * JDK Flight Recorder events of jvirtio (category "jvirtio"): a front-end's life cycle, a device
 * that needs a reset (a ring violation), a queue stop that gave up waiting for its requests.
 * Off unless a recording asks for them ({@code -XX:StartFlightRecording}, {@code jcmd PID
 * JFR.start}); each emit point costs one check of {@code shouldCommit()} then. Rare events only:
 * nothing here is on a request's path.
 */
package org.jvirtio.api.jfr;
