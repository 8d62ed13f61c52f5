package dev.fleetscore.bench.kstreams;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;
import static org.junit.jupiter.api.Assumptions.assumeTrue;

import com.fasterxml.jackson.databind.JsonNode;
import com.fasterxml.jackson.databind.ObjectMapper;
import java.nio.charset.StandardCharsets;
import java.nio.file.Path;
import java.util.List;
import java.util.Properties;
import org.apache.kafka.common.header.Headers;
import org.apache.kafka.common.serialization.StringDeserializer;
import org.apache.kafka.common.serialization.StringSerializer;
import org.apache.kafka.streams.TestInputTopic;
import org.apache.kafka.streams.TestOutputTopic;
import org.apache.kafka.streams.TopologyTestDriver;
import org.apache.kafka.streams.test.TestRecord;
import org.junit.jupiter.api.io.TempDir;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.ValueSource;

class PeerTopologyTest {
    private static final ObjectMapper JSON = new ObjectMapper();

    private static String event(String tail, int engine, int cycle, double base) {
        StringBuilder sensors = new StringBuilder();
        for (String s : List.of("T2", "T24", "T30", "T50", "P2", "P15", "P30", "Nf", "Nc", "epr",
                "Ps30", "phi", "NRf", "NRc", "BPR", "farB", "htBleed", "Nf_dmd", "PCNfR_dmd", "W31", "W32")) {
            sensors.append(sensors.length() == 0 ? "" : ",")
                    .append('"').append(s).append("\":").append(base + s.length() + cycle * 0.01);
        }
        return "{\"schema\":\"fleet.telemetry.v1\",\"event_id\":\"e:" + tail + ":" + engine + ":" + cycle
                + "\",\"tail\":\"" + tail + "\",\"engine\":" + engine
                + ",\"event_time\":\"2026-01-01T00:00:00Z\",\"cycle\":" + cycle
                + ",\"settings\":[0,0,100],\"sensors\":{" + sensors + "}}";
    }

    private static String header(Headers headers, String key) {
        return new String(headers.lastHeader(key).value(), StandardCharsets.UTF_8);
    }

    @ParameterizedTest
    @ValueSource(strings = {"memory", "rocksdb"})
    void scoresEachNewCycleOnceWithProvenance(String store, @TempDir Path tmp) throws Exception {
        assumeTrue(TestModels.available(), "no published models next to this project");
        ModelPackage model = TestModels.load(tmp);
        PeerOptions options = PeerOptions.parse(new String[] {
            "--brokers", "unused:9092", "--input-topic", "tel", "--output-topic", "pred",
            "--application-id", "test", "--model-dir", TestModels.engineRulDir().toString(),
            "--feature-sets", tmp.resolve("feature-sets.json").toString(),
            "--state-dir", tmp.resolve("state").toString(), "--store", store});
        Properties settings = PeerTopology.settings(options);
        try (TopologyTestDriver driver = new TopologyTestDriver(PeerTopology.build(options, model), settings)) {
            TestInputTopic<String, String> in =
                    driver.createInputTopic("tel", new StringSerializer(), new StringSerializer());
            TestOutputTopic<String, String> out =
                    driver.createOutputTopic("pred", new StringDeserializer(), new StringDeserializer());

            in.pipeInput("N1", event("N1", 1, 1, 500));
            in.pipeInput("N1", event("N1", 1, 2, 501));
            in.pipeInput("N1", event("N1", 1, 2, 502)); // duplicate cycle: not scored
            in.pipeInput("N1", "{\"schema\":\"fleet.schedule.v1\",\"event_id\":\"s1\",\"tail\":\"N1\"}");
            in.pipeInput("N1", "not json"); // logged and skipped
            in.pipeInput("N2", event("N2", 2, 7, 600));
            in.pipeInput("N1", event("N1", 1, 3, 503));

            List<TestRecord<String, String>> records = out.readRecordsToList();
            assertEquals(4, records.size());
            long[] offsets = {0, 1, 5, 6};
            for (int i = 0; i < records.size(); i++) {
                TestRecord<String, String> r = records.get(i);
                JsonNode p = JSON.readTree(r.value());
                assertEquals(r.key(), p.get("tail").asText());
                assertEquals("fleet.prediction.v1", p.get("schema").asText());
                assertEquals("engine-rul", p.get("model").asText());
                assertTrue(p.get("prediction").isNumber());
                assertEquals("tel", header(r.headers(), "fleet.source.topic"));
                assertEquals("0", header(r.headers(), "fleet.source.partition"));
                assertEquals(Long.toString(offsets[i]), header(r.headers(), "fleet.source.offset"));
                assertEquals(model.sha256(), header(r.headers(), "fleet.model.sha256"));
            }
            assertEquals("e:N2:2:7", JSON.readTree(records.get(2).value()).get("source_event_id").asText());
        }
    }
}
