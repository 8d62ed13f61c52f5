package dev.fleetscore.bench.kstreams;

import java.nio.ByteBuffer;
import java.util.ArrayList;
import java.util.List;

/**
 * Everything the peer keeps about one aircraft (one tail number): its engines' histories, in
 * the order they first reported. The value of the state store, keyed by tail.
 *
 * <p>The rules are fleetscore's for telemetry: a cycle at or before the engine's last applied
 * cycle is late (a duplicate is one such) and changes nothing; gaps are fine.
 */
final class AircraftState {
    /** Version of the binary form, so that a changelog written by another build is refused. */
    private static final byte FORMAT = 1;
    /** Engine positions on an airframe: 1 to 4. */
    static final int MAX_ENGINES = 4;

    private final List<EngineState> engines;

    AircraftState() {
        this(new ArrayList<>(2));
    }

    private AircraftState(List<EngineState> engines) {
        this.engines = engines;
    }

    /**
     * Applies one telemetry reading to the engine at {@code position}.
     *
     * @return that engine, now including the reading; {@code null} if the reading was late
     */
    EngineState apply(int position, int cycle, double[] tracked) {
        EngineState engine = engine(position);
        if (engine == null) {
            engine = new EngineState(position);
            engines.add(engine);
        }
        if (!engine.accepts(cycle)) {
            return null;
        }
        engine.apply(cycle, tracked);
        return engine;
    }

    /** The engine at {@code position}, or {@code null} if it has not reported. */
    EngineState engine(int position) {
        for (EngineState e : engines) {
            if (e.position() == position) {
                return e;
            }
        }
        return null;
    }

    // --- the state store's binary form (AircraftStateSerde)

    byte[] toBytes() {
        int size = 2;
        for (EngineState e : engines) {
            size += e.serializedSize();
        }
        ByteBuffer out = ByteBuffer.allocate(size);
        out.put(FORMAT).put((byte) engines.size());
        for (EngineState e : engines) {
            e.writeTo(out);
        }
        return out.array();
    }

    static AircraftState fromBytes(byte[] bytes) {
        ByteBuffer in = ByteBuffer.wrap(bytes);
        byte format = in.get();
        if (format != FORMAT) {
            throw new IllegalArgumentException(
                    "aircraft state format " + format + ", expected " + FORMAT);
        }
        int count = in.get();
        if (count < 0 || count > MAX_ENGINES) {
            throw new IllegalArgumentException("corrupt aircraft state: " + count + " engines");
        }
        List<EngineState> engines = new ArrayList<>(Math.max(count, 2));
        for (int i = 0; i < count; i++) {
            engines.add(EngineState.readFrom(in));
        }
        if (in.hasRemaining()) {
            throw new IllegalArgumentException(
                    "corrupt aircraft state: " + in.remaining() + " bytes left");
        }
        return new AircraftState(engines);
    }
}
