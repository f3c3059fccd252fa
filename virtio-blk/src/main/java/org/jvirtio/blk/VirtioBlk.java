package org.jvirtio.blk;

/**
 * virtio-blk constants (VIRTIO 1.3, 5.2). Configuration space layout, little-endian:
 *
 * <pre>
 *  0 le64 capacity (512-byte sectors)     32 u8   writeback
 *  8 le32 size_max                        33 u8   unused0
 * 12 le32 seg_max                         34 le16 num_queues
 * 16 le16 geometry.cylinders              36 le32 max_discard_sectors
 * 18 u8   geometry.heads                  40 le32 max_discard_seg
 * 19 u8   geometry.sectors                44 le32 discard_sector_alignment
 * 20 le32 blk_size                        48 le32 max_write_zeroes_sectors
 * 24 u8   physical_block_exp              52 le32 max_write_zeroes_seg
 * 25 u8   alignment_offset                56 u8   write_zeroes_may_unmap
 * 26 le16 min_io_size                     57 u8[3] unused1
 * 28 le32 opt_io_size                     60 (end)
 * </pre>
 *
 * Request: header {le32 type, le32 reserved, le64 sector} (device-readable), data, then one
 * device-writable status byte at the very end.
 */
public final class VirtioBlk {
    private VirtioBlk() {
    }

    public static final int DEVICE_ID = 2;

    // ---- feature bits (VIRTIO 1.3, 5.2.3) ----
    public static final int BLK_SIZE_MAX = 1;
    public static final int BLK_SEG_MAX = 2;
    public static final int BLK_GEOMETRY = 4;
    public static final int BLK_RO = 5;
    public static final int BLK_BLK_SIZE = 6;
    public static final int BLK_FLUSH = 9;
    public static final int BLK_TOPOLOGY = 10;
    public static final int BLK_CONFIG_WCE = 11;
    public static final int BLK_MQ = 12;
    public static final int BLK_DISCARD = 13;
    public static final int BLK_WRITE_ZEROES = 14;
    public static final int BLK_LIFETIME = 15;
    public static final int BLK_SECURE_ERASE = 16;
    public static final int BLK_ZONED = 17;

    public static final int SECTOR_SIZE = 512;

    public static final int CFG_CAPACITY = 0;
    public static final int CFG_SIZE_MAX = 8;
    public static final int CFG_SEG_MAX = 12;
    public static final int CFG_GEOMETRY_CYLINDERS = 16;
    public static final int CFG_GEOMETRY_HEADS = 18;
    public static final int CFG_GEOMETRY_SECTORS = 19;
    public static final int CFG_BLK_SIZE = 20;
    public static final int CFG_PHYSICAL_BLOCK_EXP = 24;
    public static final int CFG_ALIGNMENT_OFFSET = 25;
    public static final int CFG_MIN_IO_SIZE = 26;
    public static final int CFG_OPT_IO_SIZE = 28;
    public static final int CFG_WRITEBACK = 32;
    public static final int CFG_NUM_QUEUES = 34;
    public static final int CFG_MAX_DISCARD_SECTORS = 36;
    public static final int CFG_MAX_DISCARD_SEG = 40;
    public static final int CFG_DISCARD_SECTOR_ALIGNMENT = 44;
    public static final int CFG_MAX_WRITE_ZEROES_SECTORS = 48;
    public static final int CFG_MAX_WRITE_ZEROES_SEG = 52;
    public static final int CFG_WRITE_ZEROES_MAY_UNMAP = 56;
    public static final int CONFIG_SIZE = 60;

    public static final int T_IN = 0;
    public static final int T_OUT = 1;
    public static final int T_FLUSH = 4;
    public static final int T_GET_ID = 8;
    public static final int T_GET_LIFETIME = 10;
    public static final int T_DISCARD = 11;
    public static final int T_WRITE_ZEROES = 13;
    public static final int T_SECURE_ERASE = 14;

    public static final int S_OK = 0;
    public static final int S_IOERR = 1;
    public static final int S_UNSUPP = 2;

    public static final int HEADER_SIZE = 16;
    public static final int ID_BYTES = 20;
    /** struct virtio_blk_discard_write_zeroes: le64 sector, le32 num_sectors, le32 flags. */
    public static final int DWZ_SEGMENT_SIZE = 16;
    public static final int DWZ_F_UNMAP = 1;
}
