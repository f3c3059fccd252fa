/** Linux system calls bound through the FFM API (mmap, memfd, eventfd, poll). */
package org.jvirtio.api.linux;
