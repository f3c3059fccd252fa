/** Runnable backends and demos built from jvirtio's modules; each has one composition root. */
package org.jvirtio.examples;
