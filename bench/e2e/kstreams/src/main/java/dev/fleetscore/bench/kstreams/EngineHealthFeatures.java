package dev.fleetscore.bench.kstreams;

import java.util.ArrayList;
import java.util.Collections;
import java.util.List;

/**
 * The {@code engine-health} feature set: per tracked sensor, the window's mean, population
 * standard deviation, min, max and least-squares slope per cycle, the EWMA and its drift from
 * the early-life baseline; then the engine's latest cycle and the window's length. 100 float32
 * values, in the order of {@link #NAMES} (the order {@code fleetscore feature-sets} and the
 * model's manifest list).
 */
final class EngineHealthFeatures {
    static final String NAME = "engine-health";
    private static final List<String> STATS =
            List.of("mean", "std", "min", "max", "slope", "ewma", "drift");
    static final List<String> NAMES = names();
    static final int COUNT = NAMES.size();

    private EngineHealthFeatures() {}

    private static List<String> names() {
        List<String> names = new ArrayList<>();
        for (String sensor : EngineState.TRACKED_SENSORS) {
            for (String stat : STATS) {
                names.add(sensor + "_" + stat);
            }
        }
        names.add("cycle");
        names.add("window_len");
        return Collections.unmodifiableList(names);
    }

    /** The feature vector of one engine's state (computed in double, rounded to float once). */
    static float[] compute(EngineState engine) {
        float[] out = new float[COUNT];
        RollingWindow.Stats[] stats = engine.windowStats();
        EwmaBaseline trend = engine.trend();
        int i = 0;
        for (int c = 0; c < stats.length; c++) {
            RollingWindow.Stats s = stats[c];
            out[i++] = (float) s.mean();
            out[i++] = (float) s.std();
            out[i++] = (float) s.min();
            out[i++] = (float) s.max();
            out[i++] = (float) s.slope();
            out[i++] = (float) trend.ewma(c);
            out[i++] = (float) trend.drift(c);
        }
        out[i++] = engine.lastCycle();
        out[i] = engine.windowLength();
        return out;
    }
}
