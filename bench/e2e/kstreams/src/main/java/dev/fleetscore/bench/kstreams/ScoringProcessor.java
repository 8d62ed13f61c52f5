package dev.fleetscore.bench.kstreams;

import ai.onnxruntime.OrtException;
import java.nio.charset.StandardCharsets;
import java.time.Instant;
import org.apache.kafka.common.header.Headers;
import org.apache.kafka.common.header.internals.RecordHeaders;
import org.apache.kafka.streams.errors.StreamsException;
import org.apache.kafka.streams.processor.api.FixedKeyProcessor;
import org.apache.kafka.streams.processor.api.FixedKeyProcessorContext;
import org.apache.kafka.streams.processor.api.FixedKeyRecord;
import org.apache.kafka.streams.processor.api.RecordMetadata;

/**
 * The embedded-model step: scores each feature row with the task's own ONNX Runtime session
 * (opened in {@link #init}, closed with the task) and forwards the prediction record, with the
 * provenance headers fleetscore writes ({@code fleet.model.*}, {@code fleet.source.*}: the
 * benchmark matches predictions to their events by the source partition and offset) and, as
 * fleetscore's producer does, the time it was made as its timestamp.
 */
final class ScoringProcessor implements FixedKeyProcessor<String, FeatureRow, Prediction> {
    private final ModelPackage model;
    private final int ortThreads;
    private FixedKeyProcessorContext<String, Prediction> context;
    private OnnxScorer scorer;

    ScoringProcessor(ModelPackage model, int ortThreads) {
        this.model = model;
        this.ortThreads = ortThreads;
    }

    @Override
    public void init(FixedKeyProcessorContext<String, Prediction> context) {
        this.context = context;
        try {
            scorer = new OnnxScorer(model, ortThreads);
        } catch (OrtException e) {
            throw new StreamsException("cannot load " + model.modelFile(), e);
        }
    }

    @Override
    public void process(FixedKeyRecord<String, FeatureRow> record) {
        TelemetryEvent event = record.value().event();
        float value;
        try {
            value = scorer.score(record.value().features());
        } catch (OrtException e) {
            throw new StreamsException("scoring failed for " + event.eventId(), e);
        }
        long now = System.currentTimeMillis();
        Prediction prediction = new Prediction(
                Prediction.SCHEMA,
                event.tail(),
                event.eventId(),
                event.eventTime(),
                model.name(),
                model.version(),
                model.sha256(),
                EngineHealthFeatures.NAME,
                model.featureSetVersion(),
                value,
                Instant.ofEpochMilli(now).toString());
        context.forward(record.withValue(prediction).withHeaders(provenance()).withTimestamp(now));
    }

    private Headers provenance() {
        RecordHeaders headers = new RecordHeaders();
        header(headers, "fleet.model.name", model.name());
        header(headers, "fleet.model.version", model.version());
        header(headers, "fleet.model.sha256", model.sha256());
        // Present for every record that came from a topic (not from a punctuation).
        context.recordMetadata().ifPresent((RecordMetadata source) -> {
            header(headers, "fleet.source.topic", source.topic());
            header(headers, "fleet.source.partition", Integer.toString(source.partition()));
            header(headers, "fleet.source.offset", Long.toString(source.offset()));
        });
        return headers;
    }

    private static void header(RecordHeaders headers, String key, String value) {
        headers.add(key, value.getBytes(StandardCharsets.UTF_8));
    }

    @Override
    public void close() {
        if (scorer != null) {
            try {
                scorer.close();
            } catch (OrtException e) {
                throw new StreamsException("cannot close the ONNX session", e);
            }
        }
    }
}
