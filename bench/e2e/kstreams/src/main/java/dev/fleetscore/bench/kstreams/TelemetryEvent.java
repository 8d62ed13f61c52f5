package dev.fleetscore.bench.kstreams;

import com.fasterxml.jackson.annotation.JsonIgnoreProperties;
import com.fasterxml.jackson.annotation.JsonProperty;

/**
 * An event of the telemetry topic ({@code fleet.telemetry.v1}: one operating cycle of one
 * engine), as far as the peer reads it. Other schemas on the topic decode too, with the fields
 * they lack left null, and are dropped by {@link #isTelemetry()}.
 */
@JsonIgnoreProperties(ignoreUnknown = true)
record TelemetryEvent(
        @JsonProperty("schema") String schema,
        @JsonProperty("event_id") String eventId,
        @JsonProperty("tail") String tail,
        @JsonProperty("engine") Integer engine,
        @JsonProperty("event_time") String eventTime,
        @JsonProperty("cycle") Integer cycle,
        @JsonProperty("sensors") Sensors sensors) {

    static final String SCHEMA = "fleet.telemetry.v1";

    /** The tracked sensor channels, by their wire names (the other seven are skipped). */
    @JsonIgnoreProperties(ignoreUnknown = true)
    record Sensors(
            @JsonProperty("T24") Double t24,
            @JsonProperty("T30") Double t30,
            @JsonProperty("T50") Double t50,
            @JsonProperty("P30") Double p30,
            @JsonProperty("Nf") Double nf,
            @JsonProperty("Nc") Double nc,
            @JsonProperty("Ps30") Double ps30,
            @JsonProperty("phi") Double phi,
            @JsonProperty("NRf") Double nrf,
            @JsonProperty("NRc") Double nrc,
            @JsonProperty("BPR") Double bpr,
            @JsonProperty("htBleed") Double htBleed,
            @JsonProperty("W31") Double w31,
            @JsonProperty("W32") Double w32) {

        /** The readings in {@link EngineState#TRACKED_SENSORS} order; null if one is missing. */
        double[] tracked() {
            Double[] all = {t24, t30, t50, p30, nf, nc, ps30, phi, nrf, nrc, bpr, htBleed, w31, w32};
            double[] out = new double[all.length];
            for (int i = 0; i < all.length; i++) {
                if (all[i] == null || !Double.isFinite(all[i])) {
                    return null;
                }
                out[i] = all[i];
            }
            return out;
        }
    }

    boolean isTelemetry() {
        return SCHEMA.equals(schema);
    }

    /**
     * Whether the fields the peer uses, but the sensors, are there and in range (fleetscore
     * validates every field and dead-letters what fails; the peer skips what it cannot use).
     */
    boolean hasIdentity() {
        return eventId != null && tail != null && eventTime != null
                && engine != null && engine >= 1 && engine <= AircraftState.MAX_ENGINES
                && cycle != null && cycle >= 1
                && sensors != null;
    }
}
