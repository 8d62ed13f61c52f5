package dev.fleetscore.bench.kstreams;

import java.nio.ByteBuffer;
import java.util.List;

/**
 * One engine's telemetry history: a window of its last {@link #WINDOW} cycles of the tracked
 * sensors, their EWMA and its early-life baseline.
 */
final class EngineState {
    /** Cycles in the rolling window. */
    static final int WINDOW = 20;
    /** Smoothing factor of the EWMA (weight of the newest cycle). */
    static final double EWMA_ALPHA = 0.1;
    /** Cycles averaged into the early-life baseline that drift is measured from. */
    static final int BASELINE_CYCLES = 10;
    /**
     * The 14 C-MAPSS sensors that vary under one operating condition; the other seven carry no
     * health signal. Their order is the feature vector's.
     */
    static final List<String> TRACKED_SENSORS = List.of(
            "T24", "T30", "T50", "P30", "Nf", "Nc", "Ps30",
            "phi", "NRf", "NRc", "BPR", "htBleed", "W31", "W32");

    private final int position;
    private int lastCycle;
    private final RollingWindow window;
    private final EwmaBaseline trend;

    EngineState(int position) {
        this(position, 0, new RollingWindow(WINDOW, TRACKED_SENSORS.size()),
                new EwmaBaseline(TRACKED_SENSORS.size()));
    }

    private EngineState(int position, int lastCycle, RollingWindow window, EwmaBaseline trend) {
        this.position = position;
        this.lastCycle = lastCycle;
        this.window = window;
        this.trend = trend;
    }

    int position() {
        return position;
    }

    int lastCycle() {
        return lastCycle;
    }

    int windowLength() {
        return window.size();
    }

    RollingWindow.Stats[] windowStats() {
        return window.stats();
    }

    EwmaBaseline trend() {
        return trend;
    }

    /** Whether a reading for {@code cycle} moves the engine forward. */
    boolean accepts(int cycle) {
        return cycle > lastCycle;
    }

    /** Folds in one cycle's tracked readings ({@link #TRACKED_SENSORS} order). */
    void apply(int cycle, double[] tracked) {
        window.push(cycle, tracked);
        trend.push(EWMA_ALPHA, BASELINE_CYCLES, tracked);
        lastCycle = cycle;
    }

    // --- the state store's binary form

    int serializedSize() {
        return 1 + Integer.BYTES + window.serializedSize() + trend.serializedSize();
    }

    void writeTo(ByteBuffer out) {
        out.put((byte) position).putInt(lastCycle);
        window.writeTo(out);
        trend.writeTo(out);
    }

    static EngineState readFrom(ByteBuffer in) {
        int position = in.get();
        int lastCycle = in.getInt();
        RollingWindow window = RollingWindow.readFrom(in, WINDOW, TRACKED_SENSORS.size());
        EwmaBaseline trend = EwmaBaseline.readFrom(in, TRACKED_SENSORS.size());
        return new EngineState(position, lastCycle, window, trend);
    }
}
