/** The backends' logging configuration (logback, set up in code). */
package org.jvirtio.examples.logging;
