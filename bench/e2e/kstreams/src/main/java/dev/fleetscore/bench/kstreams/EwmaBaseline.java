package dev.fleetscore.bench.kstreams;

import java.nio.ByteBuffer;

/**
 * Exponentially weighted moving average and early-life baseline of several channels.
 *
 * <p>Both are kept relative to each channel's first observation (the same precision argument
 * as {@link RollingWindow}), and in the same order of operations as fleetscore's, so that the
 * {@code _ewma} and {@code _drift} features match it bit for bit.
 */
final class EwmaBaseline {
    private final int channels;
    /** First observation of each channel: what everything else is relative to. */
    private final double[] origin;
    private final double[] ewmaDev;
    private final double[] baselineDevSum;
    private int baselineN;
    private int seen;

    EwmaBaseline(int channels) {
        this.channels = channels;
        this.origin = new double[channels];
        this.ewmaDev = new double[channels];
        this.baselineDevSum = new double[channels];
    }

    /**
     * Folds one observation in: the EWMA starts at the first value; the baseline is the mean of
     * the first {@code baselineLen} observations (of all seen so far until then).
     */
    void push(double alpha, int baselineLen, double[] row) {
        boolean first = seen == 0;
        boolean inBaseline = baselineN < baselineLen;
        for (int c = 0; c < channels; c++) {
            double v = row[c];
            if (first) {
                origin[c] = v;
            }
            double dev = v - origin[c];
            ewmaDev[c] = first ? 0.0 : ewmaDev[c] + alpha * (dev - ewmaDev[c]);
            if (inBaseline) {
                baselineDevSum[c] += dev;
            }
        }
        if (inBaseline) {
            baselineN++;
        }
        if (seen < Integer.MAX_VALUE) {
            seen++;
        }
    }

    double ewma(int channel) {
        return origin[channel] + ewmaDev[channel];
    }

    /** EWMA minus baseline, computed without the offset so that small drifts stay exact. */
    double drift(int channel) {
        return ewmaDev[channel] - baselineDev(channel);
    }

    private double baselineDev(int channel) {
        return baselineN == 0 ? 0.0 : baselineDevSum[channel] / baselineN;
    }

    // --- the state store's binary form

    int serializedSize() {
        return 3 * channels * Double.BYTES + 2 * Integer.BYTES;
    }

    void writeTo(ByteBuffer out) {
        for (double[] a : new double[][] {origin, ewmaDev, baselineDevSum}) {
            for (double v : a) {
                out.putDouble(v);
            }
        }
        out.putInt(baselineN).putInt(seen);
    }

    static EwmaBaseline readFrom(ByteBuffer in, int channels) {
        EwmaBaseline t = new EwmaBaseline(channels);
        for (double[] a : new double[][] {t.origin, t.ewmaDev, t.baselineDevSum}) {
            for (int c = 0; c < channels; c++) {
                a[c] = in.getDouble();
            }
        }
        t.baselineN = in.getInt();
        t.seen = in.getInt();
        return t;
    }
}
