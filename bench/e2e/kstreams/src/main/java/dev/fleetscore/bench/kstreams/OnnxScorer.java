package dev.fleetscore.bench.kstreams;

import ai.onnxruntime.OnnxTensor;
import ai.onnxruntime.OnnxValue;
import ai.onnxruntime.OrtEnvironment;
import ai.onnxruntime.OrtException;
import ai.onnxruntime.OrtSession;
import java.nio.ByteBuffer;
import java.nio.ByteOrder;
import java.nio.FloatBuffer;
import java.util.Map;
import java.util.Set;

/**
 * The embedded model: an ONNX Runtime session on the package's model file, scoring one feature
 * row per call. One scorer belongs to one stream task (one thread at a time), so its input
 * tensor is allocated once, over a direct buffer that each call rewrites in place: no copy and
 * no allocation on the input side.
 */
final class OnnxScorer implements AutoCloseable {
    private final OrtSession session;
    private final FloatBuffer input;
    private final OnnxTensor inputTensor;
    private final Map<String, OnnxTensor> inputs;
    private final Set<String> outputs;
    private final int outputColumn;

    OnnxScorer(ModelPackage model, int intraOpThreads) throws OrtException {
        OrtEnvironment env = OrtEnvironment.getEnvironment();
        try (OrtSession.SessionOptions options = new OrtSession.SessionOptions()) {
            // One intra-op thread, as fleetscore and the Quix peer: a one-row call gains nothing
            // from a thread pool, and the stream threads already use the cores.
            options.setIntraOpNumThreads(intraOpThreads);
            session = env.createSession(model.modelFile().toString(), options);
        }
        try {
            input = ByteBuffer.allocateDirect(EngineHealthFeatures.COUNT * Float.BYTES)
                    .order(ByteOrder.nativeOrder())
                    .asFloatBuffer();
            long[] shape = {1, EngineHealthFeatures.COUNT};
            inputTensor = OnnxTensor.createTensor(env, input, shape);
        } catch (OrtException | RuntimeException e) {
            session.close();
            throw e;
        }
        inputs = Map.of(model.inputName(), inputTensor);
        outputs = Set.of(model.outputName());
        outputColumn = model.outputColumn();
    }

    /** The model's output for one feature row. */
    float score(float[] features) throws OrtException {
        input.put(0, features);
        try (OrtSession.Result result = session.run(inputs, outputs)) {
            OnnxValue out = result.get(0);
            return ((OnnxTensor) out).getFloatBuffer().get(outputColumn);
        }
    }

    @Override
    public void close() throws OrtException {
        inputTensor.close();
        session.close();
    }
}
