package dev.fleetscore.bench.kstreams;

import java.nio.ByteBuffer;

/**
 * The last {@code capacity} observations of several channels, with their x (the cycle number),
 * in a ring: pushing is O(channels), and the window statistics are recomputed from the ring
 * when asked.
 *
 * <p>The arithmetic is the engine-health definition's, step for step (two passes over the
 * window, values taken relative to the newest observation), so that the features come out
 * bit-identical to fleetscore's: relative values keep the precision of a large reading with a
 * small spread (9,046.19 ± 0.02), and a constant series has a standard deviation of exactly 0.
 * A running sum updated on eviction would drift with rounding error instead.
 */
final class RollingWindow {
    /** Statistics of one channel over the window. */
    record Stats(double mean, double std, double min, double max, double slope) {}

    private final int capacity;
    private final int channels;
    private int len;
    /** Slot the next observation goes to. */
    private int head;
    /** x of each slot. */
    private final double[] xs;
    /** Channel-major, {@code values[c * capacity + slot]}: each channel's window is contiguous. */
    private final double[] values;

    RollingWindow(int capacity, int channels) {
        if (capacity < 1 || channels < 1) {
            throw new IllegalArgumentException("capacity and channels must be positive");
        }
        this.capacity = capacity;
        this.channels = channels;
        this.xs = new double[capacity];
        this.values = new double[capacity * channels];
    }

    int size() {
        return len;
    }

    /** Appends one observation (one value per channel), evicting the oldest when full. */
    void push(double x, double[] row) {
        if (row.length != channels) {
            throw new IllegalArgumentException("expected " + channels + " values, got " + row.length);
        }
        int slot = head;
        xs[slot] = x;
        for (int c = 0; c < channels; c++) {
            values[c * capacity + slot] = row[c];
        }
        head = (slot + 1) % capacity;
        len = Math.min(len + 1, capacity);
    }

    /**
     * Mean, population standard deviation, min, max and least-squares slope against x of every
     * channel. The filled slots are 0..len whether or not the ring has wrapped, and every
     * statistic is independent of their order, so the slots are read in place.
     */
    Stats[] stats() {
        Stats[] out = new Stats[channels];
        int n = len;
        if (n == 0) {
            java.util.Arrays.fill(out, new Stats(0, 0, 0, 0, 0));
            return out;
        }
        int newest = (head + capacity - 1) % capacity;
        double nf = n;

        // Centred x, shared by every channel.
        double xRef = xs[newest];
        double[] dx = new double[n];
        double sumX = 0.0;
        for (int i = 0; i < n; i++) {
            dx[i] = xs[i] - xRef;
            sumX += dx[i];
        }
        double meanDx = sumX / nf;
        double sxx = 0.0;
        for (int i = 0; i < n; i++) {
            dx[i] -= meanDx;
            sxx += dx[i] * dx[i];
        }

        for (int c = 0; c < channels; c++) {
            int base = c * capacity;
            double yRef = values[base + newest];
            double sum = 0.0;
            double min = Double.POSITIVE_INFINITY;
            double max = Double.NEGATIVE_INFINITY;
            for (int i = 0; i < n; i++) {
                double y = values[base + i];
                sum += y - yRef;
                min = Math.min(min, y);
                max = Math.max(max, y);
            }
            double meanDy = sum / nf;
            double syy = 0.0;
            double sxy = 0.0;
            for (int i = 0; i < n; i++) {
                double e = (values[base + i] - yRef) - meanDy;
                syy += e * e;
                sxy += dx[i] * e;
            }
            out[c] = new Stats(
                    yRef + meanDy, Math.sqrt(syy / nf), min, max, sxx > 0.0 ? sxy / sxx : 0.0);
        }
        return out;
    }

    // --- the state store's binary form: only the filled slots

    int serializedSize() {
        return 2 * Short.BYTES + len * (1 + channels) * Double.BYTES;
    }

    void writeTo(ByteBuffer out) {
        out.putShort((short) len).putShort((short) head);
        for (int i = 0; i < len; i++) {
            out.putDouble(xs[i]);
        }
        for (int c = 0; c < channels; c++) {
            for (int i = 0; i < len; i++) {
                out.putDouble(values[c * capacity + i]);
            }
        }
    }

    static RollingWindow readFrom(ByteBuffer in, int capacity, int channels) {
        RollingWindow w = new RollingWindow(capacity, channels);
        w.len = in.getShort();
        w.head = in.getShort();
        if (w.len < 0 || w.len > capacity || w.head < 0 || w.head >= capacity) {
            throw new IllegalArgumentException("corrupt window: len " + w.len + ", head " + w.head);
        }
        for (int i = 0; i < w.len; i++) {
            w.xs[i] = in.getDouble();
        }
        for (int c = 0; c < channels; c++) {
            for (int i = 0; i < w.len; i++) {
                w.values[c * capacity + i] = in.getDouble();
            }
        }
        return w;
    }
}
