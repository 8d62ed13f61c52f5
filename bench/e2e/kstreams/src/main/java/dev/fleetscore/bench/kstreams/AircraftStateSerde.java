package dev.fleetscore.bench.kstreams;

import org.apache.kafka.common.errors.SerializationException;
import org.apache.kafka.common.serialization.Deserializer;
import org.apache.kafka.common.serialization.Serde;
import org.apache.kafka.common.serialization.Serializer;

/**
 * The state store's value serde: {@link AircraftState}'s compact binary form (about 2.7 KB for
 * an engine with a full window; only filled window slots are written). Every store, in memory
 * or RocksDB, and its changelog hold bytes, so this runs on every get and put.
 */
final class AircraftStateSerde implements Serde<AircraftState> {
    @Override
    public Serializer<AircraftState> serializer() {
        return (topic, state) -> state == null ? null : state.toBytes();
    }

    @Override
    public Deserializer<AircraftState> deserializer() {
        return (topic, bytes) -> {
            if (bytes == null) {
                return null;
            }
            try {
                return AircraftState.fromBytes(bytes);
            } catch (RuntimeException e) {
                throw new SerializationException("unreadable aircraft state in " + topic, e);
            }
        };
    }
}
