package dev.fleetscore.bench.kstreams;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertNotNull;
import static org.junit.jupiter.api.Assertions.assertNull;

import java.util.Arrays;
import org.junit.jupiter.api.Test;

class EngineHealthFeaturesTest {
    private static final int SENSORS = EngineState.TRACKED_SENSORS.size();

    private static double[] reading(double v) {
        double[] r = new double[SENSORS];
        Arrays.fill(r, v);
        return r;
    }

    private static float feature(float[] f, String name) {
        return f[EngineHealthFeatures.NAMES.indexOf(name)];
    }

    @Test
    void namesAreTheHundredInManifestOrder() throws Exception {
        assertEquals(100, EngineHealthFeatures.COUNT);
        assertEquals("T24_mean", EngineHealthFeatures.NAMES.get(0));
        assertEquals("W32_drift", EngineHealthFeatures.NAMES.get(97));
        if (TestModels.available()) {
            var manifest = TestModels.manifest().path("input").path("features");
            for (int i = 0; i < EngineHealthFeatures.COUNT; i++) {
                assertEquals(manifest.get(i).asText(), EngineHealthFeatures.NAMES.get(i));
            }
        }
    }

    @Test
    void constantSeriesHasNoSpreadSlopeOrDrift() {
        AircraftState state = new AircraftState();
        EngineState engine = null;
        for (int cycle = 1; cycle <= 30; cycle++) {
            engine = state.apply(1, cycle, reading(9046.19));
        }
        float[] f = EngineHealthFeatures.compute(engine);
        assertEquals(9046.19f, feature(f, "Nc_mean"));
        assertEquals(0f, feature(f, "Nc_std"));
        assertEquals(0f, feature(f, "Nc_slope"));
        assertEquals(9046.19f, feature(f, "Nc_ewma"));
        assertEquals(0f, feature(f, "Nc_drift"));
        assertEquals(30f, feature(f, "cycle"));
        assertEquals(20f, feature(f, "window_len"));
    }

    @Test
    void windowKeepsTheLastTwentyCyclesAndFitsTheSlope() {
        AircraftState state = new AircraftState();
        EngineState engine = null;
        for (int cycle = 1; cycle <= 25; cycle++) {
            engine = state.apply(2, cycle, reading(5.0 + 2.0 * cycle));
        }
        float[] f = EngineHealthFeatures.compute(engine);
        assertEquals(17f, feature(f, "T24_min")); // cycle 6 is the oldest left
        assertEquals(55f, feature(f, "T24_max"));
        assertEquals(36f, feature(f, "T24_mean"));
        assertEquals(2f, feature(f, "T24_slope"));
        // Population std of 20 consecutive cycles, times the step of 2: sqrt((20² - 1) / 12) * 2.
        assertEquals((float) Math.sqrt(133.0), feature(f, "T24_std"), 1e-5f);
    }

    @Test
    void ewmaStartsAtTheFirstReadingAndDriftIsFromTheEarlyBaseline() {
        AircraftState state = new AircraftState();
        state.apply(1, 1, reading(100.0));
        EngineState engine = state.apply(1, 2, reading(110.0));
        float[] f = EngineHealthFeatures.compute(engine);
        assertEquals(101f, feature(f, "T30_ewma")); // 100 + 0.1 * (110 - 100)
        assertEquals(-4f, feature(f, "T30_drift")); // 1 - mean(0, 10)
        assertEquals(10f, feature(f, "T30_slope"));
    }

    @Test
    void lateAndDuplicateCyclesChangeNothing() {
        AircraftState state = new AircraftState();
        state.apply(1, 5, reading(1.0));
        float[] before = EngineHealthFeatures.compute(state.engine(1));
        assertNull(state.apply(1, 5, reading(2.0)));
        assertNull(state.apply(1, 3, reading(2.0)));
        assertArrayEquals(before, EngineHealthFeatures.compute(state.engine(1)));
        // Another engine of the same aircraft has its own history; gaps are fine.
        assertNotNull(state.apply(2, 1, reading(2.0)));
        assertNotNull(state.apply(1, 9, reading(3.0)));
    }

    @Test
    void stateSurvivesTheStoreSerdeBitForBit() {
        AircraftStateSerde serde = new AircraftStateSerde();
        AircraftState live = new AircraftState();
        AircraftState stored = new AircraftState();
        for (int cycle = 1; cycle <= 47; cycle++) {
            double[] r = reading(0);
            for (int s = 0; s < SENSORS; s++) {
                r[s] = 500 + s + Math.sin(cycle * 0.7 + s) * 3.3;
            }
            int engine = 1 + cycle % 2;
            EngineState a = live.apply(engine, cycle, r);
            stored = serde.deserializer().deserialize("t", serde.serializer().serialize("t", stored));
            EngineState b = stored.apply(engine, cycle, r);
            assertArrayEquals(EngineHealthFeatures.compute(a), EngineHealthFeatures.compute(b));
        }
    }
}
