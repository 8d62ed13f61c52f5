package dev.fleetscore.bench.kstreams;

import org.apache.kafka.streams.processor.api.FixedKeyProcessor;
import org.apache.kafka.streams.processor.api.FixedKeyProcessorContext;
import org.apache.kafka.streams.processor.api.FixedKeyRecord;
import org.apache.kafka.streams.state.KeyValueStore;
import org.slf4j.Logger;
import org.slf4j.LoggerFactory;

/**
 * The stateful step: folds a telemetry event into its aircraft's state (the state store, keyed
 * by tail: the record key) and forwards the engine-health features of the engine that reported.
 * A late or duplicate cycle changes nothing and is not scored; an event without the fields the
 * features need is skipped.
 */
final class EngineHealthProcessor implements FixedKeyProcessor<String, TelemetryEvent, FeatureRow> {
    private static final Logger log = LoggerFactory.getLogger(EngineHealthProcessor.class);

    private final String storeName;
    private FixedKeyProcessorContext<String, FeatureRow> context;
    private KeyValueStore<String, AircraftState> store;

    EngineHealthProcessor(String storeName) {
        this.storeName = storeName;
    }

    @Override
    public void init(FixedKeyProcessorContext<String, FeatureRow> context) {
        this.context = context;
        this.store = context.getStateStore(storeName);
    }

    @Override
    public void process(FixedKeyRecord<String, TelemetryEvent> record) {
        String tail = record.key();
        TelemetryEvent event = record.value();
        double[] tracked = event.hasIdentity() ? event.sensors().tracked() : null;
        if (tail == null || tracked == null) {
            log.debug("skipping an unusable telemetry event (key {}): {}", tail, event);
            return;
        }
        AircraftState state = store.get(tail);
        if (state == null) {
            state = new AircraftState();
        }
        EngineState engine = state.apply(event.engine(), event.cycle(), tracked);
        if (engine == null) {
            return; // late or duplicate: changes nothing, scores nothing
        }
        store.put(tail, state);
        context.forward(record.withValue(new FeatureRow(event, EngineHealthFeatures.compute(engine))));
    }
}
