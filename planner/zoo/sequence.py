"""Sequence models: a transformer encoder, an LSTM classifier and a Tacotron2-like decoder."""

from __future__ import annotations

from trainplan.planner.spec import ModelSpec
from trainplan.planner.zoo.net import Net


def mlp(batch=32, input_shape=(784,), classes=10, hidden=(256, 128)) -> ModelSpec:
    """A multi-layer perceptron with ReLU between fully-connected layers."""
    n = Net("mlp")
    n.add("input", "input", input_shape=tuple(input_shape))
    if len(input_shape) > 1:
        n.add("flatten", "flatten")
    for i, units in enumerate(hidden, start=1):
        n.add("fully_connected", f"fc{i}", unit=units)
        n.act(f"fc{i}/relu", "relu")
    n.add("fully_connected", f"fc{len(hidden) + 1}", unit=classes)
    n.add("cross_softmax", "loss")
    return n.spec(batch, description=f"MLP {input_shape}-{'-'.join(map(str, hidden))}-{classes}")


def transformer(batch=32, input_shape=(128,), classes=10, vocab=8000, d_model=256, heads=4,
                d_ff=1024, blocks=4) -> ModelSpec:
    """Transformer encoder classifier: embedding, N post-norm blocks, linear head."""
    n = Net("transformer")
    n.add("input", "tokens", input_shape=tuple(input_shape))
    n.add("embedding", "embedding", in_dim=vocab, out_dim=d_model)
    for b in range(blocks):
        x = n.last
        attn = n.add("multi_head_attention", f"block{b}/attention", num_heads=heads)
        n.add("addition", f"block{b}/add1", [x, attn])
        y = n.add("layer_normalization", f"block{b}/norm1")
        n.add("fully_connected", f"block{b}/ff1", unit=d_ff)
        n.act(f"block{b}/gelu", "gelu")
        ff = n.add("fully_connected", f"block{b}/ff2", unit=d_model)
        n.add("addition", f"block{b}/add2", [y, ff])
        n.add("layer_normalization", f"block{b}/norm2")
    n.add("flatten", "flatten")
    n.add("fully_connected", "classifier", unit=classes)
    n.add("cross_softmax", "loss")
    return n.spec(batch, description=f"Transformer encoder, {blocks} blocks, d={d_model}")


def lstm_classifier(batch=32, input_shape=(28, 28), classes=10, hidden=128,
                    integrate_bias=True) -> ModelSpec:
    """Two stacked LSTMs over a (time, features) sequence, then a linear classifier; one bias
    per LSTM, or PyTorch's and NNTrainer's two (``integrate_bias=False``)."""
    n = Net("lstm")
    n.add("input", "input", input_shape=tuple(input_shape))
    n.add("lstm", "lstm1", unit=hidden, return_sequences=True, integrate_bias=integrate_bias)
    n.add("lstm", "lstm2", unit=hidden, integrate_bias=integrate_bias)
    n.add("fully_connected", "classifier", unit=classes)
    n.add("cross_softmax", "loss")
    return n.spec(batch, description=f"LSTM classifier, 2x{hidden}")


def tacotron2_decoder(batch=32, input_shape=(200, 80), classes=None, memory_len=100,
                      encoder_dim=512, prenet=256, rnn=1024, heads=1) -> ModelSpec:
    """Tacotron2-like decoder: prenet, attention LSTM, attention over the encoder memory,
    decoder LSTM and a linear mel projection trained with MSE (teacher forcing)."""
    frames, mels = input_shape
    n = Net("tacotron2")
    n.add("input", "mel_in", input_shape=(frames, mels))
    memory = n.add("input", "memory", [], input_shape=(memory_len, encoder_dim))
    n.add("fully_connected", "prenet1", "mel_in", unit=prenet)
    n.act("prenet1/relu", "relu")
    n.add("dropout", "prenet1/dropout", dropout_rate=0.5)
    n.add("fully_connected", "prenet2", unit=prenet)
    n.act("prenet2/relu", "relu")
    n.add("dropout", "prenet2/dropout", dropout_rate=0.5)
    query = n.add("lstm", "attention_rnn", unit=rnn, return_sequences=True)
    context = n.add("multi_head_attention", "attention", [query, memory, memory],
                    num_heads=heads)
    n.add("concat", "concat", [query, context], axis=2)
    n.add("lstm", "decoder_rnn", unit=rnn, return_sequences=True)
    n.add("fully_connected", "mel_projection", unit=mels)
    n.add("mse", "loss")
    return n.spec(batch, description="Tacotron2-like decoder (LSTM + attention + linear)")
