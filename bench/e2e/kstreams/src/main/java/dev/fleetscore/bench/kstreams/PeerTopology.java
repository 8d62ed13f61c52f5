package dev.fleetscore.bench.kstreams;

import java.util.Map;
import java.util.Properties;
import org.apache.kafka.clients.producer.ProducerConfig;
import org.apache.kafka.common.serialization.Serdes;
import org.apache.kafka.streams.StreamsBuilder;
import org.apache.kafka.streams.StreamsConfig;
import org.apache.kafka.streams.Topology;
import org.apache.kafka.streams.errors.LogAndContinueExceptionHandler;
import org.apache.kafka.streams.kstream.Consumed;
import org.apache.kafka.streams.kstream.Produced;
import org.apache.kafka.streams.state.KeyValueBytesStoreSupplier;
import org.apache.kafka.streams.state.KeyValueStore;
import org.apache.kafka.streams.state.StoreBuilder;
import org.apache.kafka.streams.state.Stores;

/**
 * The application: its topology and its Kafka Streams settings.
 *
 * <pre>
 * telemetry topic --JSON--> filter(telemetry) --> engine-health (state store "aircraft")
 *                 --> score (ONNX, per task) --> predictions topic
 * </pre>
 *
 * The key (the tail) never changes, so there is no repartition: one sub-topology, one task per
 * input partition, and the store's partition N holds the aircraft of input partition N.
 */
final class PeerTopology {
    static final String STORE = "aircraft";

    private PeerTopology() {}

    static Topology build(PeerOptions options, ModelPackage model) {
        StreamsBuilder builder = new StreamsBuilder();
        builder.addStateStore(storeBuilder(options));
        builder.stream(options.inputTopic(),
                        Consumed.with(Serdes.String(), new JsonSerde<>(TelemetryEvent.class)))
                .filter((tail, event) -> event != null && event.isTelemetry())
                .processValues(() -> new EngineHealthProcessor(STORE), STORE)
                .processValues(() -> new ScoringProcessor(model, options.ortThreads()))
                .to(options.outputTopic(),
                        Produced.with(Serdes.String(), new JsonSerde<>(Prediction.class)));
        return builder.build();
    }

    /**
     * The per-aircraft store. {@code rocksdb} is what Kafka Streams gives a DSL store by default:
     * RocksDB behind the record cache (which coalesces a busy aircraft's writes between commits).
     * {@code memory} keeps the bytes in a map and skips the cache, which would only copy them
     * again. Either way the changelog is on unless {@code --no-changelog}.
     */
    static StoreBuilder<KeyValueStore<String, AircraftState>> storeBuilder(PeerOptions options) {
        KeyValueBytesStoreSupplier supplier = options.store() == PeerOptions.Store.MEMORY
                ? Stores.inMemoryKeyValueStore(STORE)
                : Stores.persistentKeyValueStore(STORE);
        StoreBuilder<KeyValueStore<String, AircraftState>> store =
                Stores.keyValueStoreBuilder(supplier, Serdes.String(), new AircraftStateSerde());
        if (options.store() == PeerOptions.Store.ROCKSDB) {
            store = store.withCachingEnabled();
        }
        return options.changelog() ? store.withLoggingEnabled(Map.of()) : store.withLoggingDisabled();
    }

    static Properties settings(PeerOptions options) {
        Properties p = new Properties();
        p.put(StreamsConfig.APPLICATION_ID_CONFIG, options.applicationId());
        p.put(StreamsConfig.BOOTSTRAP_SERVERS_CONFIG, options.brokers());
        p.put(StreamsConfig.PROCESSING_GUARANTEE_CONFIG, options.guarantee());
        p.put(StreamsConfig.NUM_STREAM_THREADS_CONFIG, options.streamThreads());
        if (options.stateDir() != null) {
            p.put(StreamsConfig.STATE_DIR_CONFIG, options.stateDir().toString());
        }
        // An event that is not JSON is logged and skipped rather than stopping the application
        // (fleetscore dead-letters it).
        p.put(StreamsConfig.DESERIALIZATION_EXCEPTION_HANDLER_CLASS_CONFIG,
                LogAndContinueExceptionHandler.class);
        // Kafka Streams makes its producer linger 100 ms for throughput; a scoring service is
        // judged on latency too. 1 ms is the least above "send at once" (fleetscore lingers
        // 0.5 ms); under load the producer batches while requests are in flight anyway.
        p.put(StreamsConfig.producerPrefix(ProducerConfig.LINGER_MS_CONFIG), 1);
        p.putAll(options.config());
        return p;
    }
}
