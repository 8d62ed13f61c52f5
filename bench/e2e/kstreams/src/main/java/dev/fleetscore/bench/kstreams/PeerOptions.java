package dev.fleetscore.bench.kstreams;

import java.nio.file.Path;
import java.util.ArrayDeque;
import java.util.Deque;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;

/** The peer's command line (the Quix Streams peer's, plus what Kafka Streams adds). */
record PeerOptions(
        String brokers,
        String inputTopic,
        String outputTopic,
        String applicationId,
        Path modelDir,
        Path featureSets,
        Path stateDir,
        Store store,
        boolean changelog,
        String guarantee,
        int streamThreads,
        int ortThreads,
        Map<String, String> config,
        String logLevel) {

    /** Where the per-aircraft state lives. */
    enum Store {
        /** Kafka Streams' default persistent store, with its record cache. */
        ROCKSDB,
        /** Kafka Streams' in-memory store: no disk, no cache. */
        MEMORY
    }

    static final List<String> GUARANTEES = List.of("at_least_once", "exactly_once_v2");

    /**
     * Two stream threads: one per core of the benchmark machine. The work is CPU-bound on the
     * stream threads (JSON, state, one ONNX call per record), so a second thread uses the
     * second core; a third would time-slice with the broker, the load generator, the JIT and
     * the collector on the same two cores. The price: the three input partitions make three
     * tasks, so one thread carries two of them (--threads 3 gives each its own thread).
     */
    static final int DEFAULT_STREAM_THREADS = 2;

    static final String USAGE = """
            usage: java -jar fleet-kstreams-peer.jar --brokers HOST:PORT --input-topic T \\
                     --output-topic P --application-id ID --model-dir models/engine-rul/N \\
                     --feature-sets feature-sets.json [options]

            fleetscore's engine-health job as a Kafka Streams application: telemetry (JSON,
            keyed by tail) -> per-aircraft state in a KeyValueStore -> 100 engine-health
            features -> engine-rul (ONNX Runtime, one session per task) -> prediction records.

              --brokers HOST:PORT        bootstrap servers
              --input-topic T            telemetry topic
              --output-topic P           predictions topic
              --application-id ID        Kafka Streams application.id (the consumer group)
              --model-dir DIR            models/engine-rul/<version> (manifest.json, model.onnx)
              --feature-sets FILE        the JSON `fleetscore feature-sets` prints
              --state-dir DIR            Kafka Streams state.dir (default: a new temporary one)
              --store rocksdb|memory     state store (default rocksdb, Kafka Streams' default)
              --no-changelog             no changelog topic for the store (default: one)
              --guarantee G              at_least_once (default) or exactly_once_v2
              --threads N                num.stream.threads (default 2: one per core)
              --ort-threads N            ONNX Runtime intra-op threads (default 1)
              --config KEY=VALUE         any Kafka Streams or client setting (repeatable;
                                         producer./consumer. prefixes as Kafka Streams takes
                                         them); applied last
              --loglevel LEVEL           trace, debug, info (default), warn, error
              --version                  print the Kafka Streams, ONNX Runtime and Java versions
            """;

    /** Thrown for a command line that cannot be used; its message says why. */
    static final class UsageException extends Exception {
        private static final long serialVersionUID = 1L;

        UsageException(String message) {
            super(message);
        }
    }

    static PeerOptions parse(String[] args) throws UsageException {
        Deque<String> rest = new ArrayDeque<>(List.of(args));
        String brokers = null, input = null, output = null, appId = null, logLevel = "info";
        Path modelDir = null, featureSets = null, stateDir = null;
        Store store = Store.ROCKSDB;
        boolean changelog = true;
        String guarantee = "at_least_once";
        int threads = DEFAULT_STREAM_THREADS, ortThreads = 1;
        Map<String, String> config = new LinkedHashMap<>();
        while (!rest.isEmpty()) {
            String flag = rest.pop();
            switch (flag) {
                case "--brokers" -> brokers = value(rest, flag);
                case "--input-topic" -> input = value(rest, flag);
                case "--output-topic" -> output = value(rest, flag);
                case "--application-id" -> appId = value(rest, flag);
                case "--model-dir" -> modelDir = Path.of(value(rest, flag));
                case "--feature-sets" -> featureSets = Path.of(value(rest, flag));
                case "--state-dir" -> stateDir = Path.of(value(rest, flag));
                case "--store" -> store = switch (value(rest, flag)) {
                    case "rocksdb" -> Store.ROCKSDB;
                    case "memory" -> Store.MEMORY;
                    default -> throw new UsageException("--store is rocksdb or memory");
                };
                case "--no-changelog" -> changelog = false;
                case "--guarantee" -> {
                    guarantee = value(rest, flag);
                    if (!GUARANTEES.contains(guarantee)) {
                        throw new UsageException("--guarantee is one of " + GUARANTEES);
                    }
                }
                case "--threads" -> threads = positive(rest, flag);
                case "--ort-threads" -> ortThreads = positive(rest, flag);
                case "--config" -> {
                    String kv = value(rest, flag);
                    int eq = kv.indexOf('=');
                    if (eq <= 0) {
                        throw new UsageException("--config takes KEY=VALUE, not " + kv);
                    }
                    config.put(kv.substring(0, eq), kv.substring(eq + 1));
                }
                case "--loglevel" -> logLevel = value(rest, flag).toLowerCase(java.util.Locale.ROOT);
                case "-h", "--help" -> throw new UsageException("");
                default -> throw new UsageException("unknown argument: " + flag);
            }
        }
        for (var required : new Object[][] {
            {"--brokers", brokers}, {"--input-topic", input}, {"--output-topic", output},
            {"--application-id", appId}, {"--model-dir", modelDir}, {"--feature-sets", featureSets}}) {
            if (required[1] == null) {
                throw new UsageException(required[0] + " is required");
            }
        }
        return new PeerOptions(brokers, input, output, appId, modelDir, featureSets, stateDir,
                store, changelog, guarantee, threads, ortThreads, Map.copyOf(config), logLevel);
    }

    private static String value(Deque<String> rest, String flag) throws UsageException {
        if (rest.isEmpty()) {
            throw new UsageException(flag + " needs a value");
        }
        return rest.pop();
    }

    private static int positive(Deque<String> rest, String flag) throws UsageException {
        String v = value(rest, flag);
        try {
            int n = Integer.parseInt(v);
            if (n >= 1) {
                return n;
            }
        } catch (NumberFormatException e) {
            // reported below
        }
        throw new UsageException(flag + " takes a positive integer, not " + v);
    }
}
