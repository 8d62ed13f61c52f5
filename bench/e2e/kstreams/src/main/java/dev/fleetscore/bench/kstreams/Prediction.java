package dev.fleetscore.bench.kstreams;

import com.fasterxml.jackson.annotation.JsonProperty;

/**
 * A record of the predictions topic, field for field the {@code fleet.prediction.v1} record
 * fleetscore and the Quix Streams peer write (without fleetscore's interval, which the peers
 * do not compute). {@code prediction} is the model's float32 output, written as the shortest
 * decimal that reads back as the same float.
 */
record Prediction(
        @JsonProperty("schema") String schema,
        @JsonProperty("tail") String tail,
        @JsonProperty("source_event_id") String sourceEventId,
        @JsonProperty("event_time") String eventTime,
        @JsonProperty("model") String model,
        @JsonProperty("model_version") String modelVersion,
        @JsonProperty("model_sha256") String modelSha256,
        @JsonProperty("feature_set") String featureSet,
        @JsonProperty("feature_set_version") String featureSetVersion,
        @JsonProperty("prediction") float prediction,
        @JsonProperty("scored_at") String scoredAt) {

    static final String SCHEMA = "fleet.prediction.v1";
}
