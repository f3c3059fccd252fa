/** The ring demo: a driver and a device exchanging requests through a split ring in shared memory. */
package org.jvirtio.examples.ringdemo;
