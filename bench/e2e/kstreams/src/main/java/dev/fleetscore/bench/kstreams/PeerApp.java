package dev.fleetscore.bench.kstreams;

import ai.onnxruntime.OrtEnvironment;
import ai.onnxruntime.OrtException;
import java.io.IOException;
import java.io.InputStream;
import java.time.Duration;
import java.util.List;
import java.util.Properties;
import java.util.concurrent.CountDownLatch;
import java.util.concurrent.atomic.AtomicBoolean;
import org.apache.kafka.streams.CloseOptions;
import org.apache.kafka.streams.KafkaStreams;
import org.apache.kafka.streams.Topology;
import org.apache.kafka.streams.errors.StreamsUncaughtExceptionHandler.StreamThreadExceptionResponse;
import org.slf4j.Logger;
import org.slf4j.LoggerFactory;

/**
 * Entry point: parses the command line, checks the model package, starts the Kafka Streams
 * application and runs until SIGTERM/SIGINT (a clean close: what was processed is committed)
 * or a stream thread fails (exit 1, so that whoever started it sees it).
 */
public final class PeerApp {
    private static final Duration CLOSE_TIMEOUT = Duration.ofSeconds(20);

    private PeerApp() {}

    /** What the benchmark records of this peer: the libraries' own version strings. */
    static String versions() throws IOException, OrtException {
        Properties streams = new Properties();
        try (InputStream in =
                KafkaStreams.class.getResourceAsStream("/kafka/kafka-streams-version.properties")) {
            if (in != null) {
                streams.load(in);
            }
        }
        return "kafka-streams " + streams.getProperty("version", "unknown")
                + ", onnxruntime " + OrtEnvironment.getEnvironment().getVersion()
                + ", java " + Runtime.version();
    }

    public static void main(String[] args) throws Exception {
        if (List.of(args).contains("--version")) {
            System.out.println(versions());
            return;
        }
        PeerOptions options;
        try {
            options = PeerOptions.parse(args);
        } catch (PeerOptions.UsageException e) {
            if (e.getMessage().isEmpty()) { // --help
                System.out.print(PeerOptions.USAGE);
                return;
            }
            System.err.print("error: " + e.getMessage() + "\n\n" + PeerOptions.USAGE);
            System.exit(2);
            return;
        }
        // Before the first logger exists: slf4j-simple reads its level once.
        System.setProperty("org.slf4j.simpleLogger.defaultLogLevel", options.logLevel());
        Logger log = LoggerFactory.getLogger(PeerApp.class);

        ModelPackage model = ModelPackage.load(options.modelDir(), options.featureSets());
        Topology topology = PeerTopology.build(options, model);
        log.info("peer starting ({}): {}; model {} {} ({}); topology:\n{}", versions(), options,
                model.name(), model.version(), model.modelFile(), topology.describe());

        KafkaStreams streams = new KafkaStreams(topology, PeerTopology.settings(options));
        CountDownLatch stopped = new CountDownLatch(1);
        AtomicBoolean failed = new AtomicBoolean();
        streams.setStateListener((now, before) -> {
            log.info("state {} -> {}", before, now);
            if (now == KafkaStreams.State.ERROR) {
                failed.set(true);
            }
            if (now == KafkaStreams.State.ERROR || now == KafkaStreams.State.NOT_RUNNING) {
                stopped.countDown();
            }
        });
        streams.setUncaughtExceptionHandler(e -> {
            log.error("stream thread failed: stopping", e);
            return StreamThreadExceptionResponse.SHUTDOWN_CLIENT;
        });
        AtomicBoolean terminating = new AtomicBoolean();
        Runtime.getRuntime().addShutdownHook(new Thread(() -> {
            terminating.set(true);
            streams.close(CloseOptions.timeout(CLOSE_TIMEOUT));
        }, "peer-shutdown"));

        streams.start();
        stopped.await();
        // Stopped by a signal: the shutdown hook closes and the JVM exits by itself. Stopped by
        // a failure: close and exit non-zero.
        if (!terminating.get()) {
            streams.close(CloseOptions.timeout(CLOSE_TIMEOUT));
            System.exit(failed.get() ? 1 : 0);
        }
    }
}
