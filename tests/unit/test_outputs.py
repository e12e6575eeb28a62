from gateway.notebook.outputs import OutputCollector, output_from_message, output_size


def stream(text: str, name: str = "stdout") -> dict:
    return {"output_type": "stream", "name": name, "text": text}


def test_messages_become_nbformat_outputs() -> None:
    assert output_from_message("stream", {"name": "stdout", "text": "hi\n"}) == stream("hi\n")
    assert output_from_message(
        "execute_result", {"execution_count": 3, "data": {"text/plain": "1"}, "metadata": {}}
    ) == {"output_type": "execute_result", "execution_count": 3, "data": {"text/plain": "1"}, "metadata": {}}
    error = output_from_message("error", {"ename": "E", "evalue": "v", "traceback": ["t"]})
    assert error == {"output_type": "error", "ename": "E", "evalue": "v", "traceback": ["t"]}
    assert output_from_message("status", {"execution_state": "idle"}) is None


def test_consecutive_stream_chunks_merge() -> None:
    collector = OutputCollector(max_bytes=10_000, max_outputs=10)
    for text in ["a", "b", "c"]:
        collector.add(stream(text))
    collector.add(stream("err", "stderr"))
    collector.add(stream("d"))
    assert collector.outputs() == [stream("abc"), stream("err", "stderr"), stream("d")]
    assert not collector.truncated


def test_huge_stream_keeps_head_and_tail_within_budget() -> None:
    collector = OutputCollector(max_bytes=1000, max_outputs=10)
    for i in range(10_000):
        collector.add(stream(f"line {i}\n"))
    outputs = collector.outputs()
    text = "".join(o["text"] for o in outputs)
    assert text.startswith("line 0\nline 1\n")
    assert text.endswith("line 9999\n")
    assert "output truncated" in outputs[1]["text"]
    kept = sum(output_size(o) for o in outputs if "truncated" not in o["text"])
    assert kept <= 1000
    assert collector.dropped_bytes == sum(len(f"line {i}\n") for i in range(10_000)) - kept


def test_many_outputs_are_capped_by_count() -> None:
    collector = OutputCollector(max_bytes=1_000_000, max_outputs=10)
    for i in range(1000):
        collector.add({"output_type": "display_data", "data": {"text/plain": str(i)}, "metadata": {}})
    outputs = collector.outputs()
    values = [o["data"]["text/plain"] for o in outputs if o["output_type"] == "display_data"]
    assert values == ["0", "1", "2", "3", "4", "995", "996", "997", "998", "999"]
    assert "990 outputs" in outputs[5]["text"]


def test_clear_output_forgets_everything() -> None:
    collector = OutputCollector(max_bytes=1000, max_outputs=10)
    collector.add(stream("old"))
    collector.clear()
    collector.add(stream("new"))
    assert collector.outputs() == [stream("new")]


def test_strip_ansi_cleans_tracebacks_and_streams() -> None:
    from gateway.notebook.outputs import strip_ansi

    error = {
        "output_type": "error",
        "ename": "E",
        "evalue": "\x1b[0;31mbad\x1b[0m",
        "traceback": ["\x1b[1;32mline\x1b[0m"],
    }
    colored = [error, stream("\x1b[31mred\x1b[39m\n")]
    assert strip_ansi(colored) == [
        {"output_type": "error", "ename": "E", "evalue": "bad", "traceback": ["line"]},
        stream("red\n"),
    ]
    assert colored[0]["traceback"] == ["\x1b[1;32mline\x1b[0m"]  # the stored outputs are left alone


def test_images_over_the_cap_become_a_marker() -> None:
    small = {"output_type": "display_data", "data": {"image/png": "A" * 2000, "text/plain": "<Figure>"}, "metadata": {}}
    big = {"output_type": "display_data", "data": {"image/png": "B" * 5000, "text/plain": "<Figure>"}, "metadata": {}}
    collector = OutputCollector(max_bytes=100_000, max_outputs=10, max_image_bytes=4096)
    collector.add(small)
    collector.add(big)
    kept_small, kept_big = collector.outputs()
    assert kept_small["data"]["image/png"] == "A" * 2000
    assert "image/png" not in kept_big["data"]
    assert kept_big["data"]["text/plain"] == "<Figure>\n[image/png of 5000 bytes dropped: over the 4096-byte image cap]"


def test_on_output_sees_each_output_as_it_arrives_then_one_truncation_notice() -> None:
    seen: list[dict] = []
    collector = OutputCollector(max_bytes=1024, max_outputs=100, on_output=seen.append)
    collector.add(stream("a"))
    collector.add(stream("b"))
    assert seen == [stream("a"), stream("b")]
    for _ in range(100):
        collector.add(stream("x" * 100))
    notices = [o for o in seen if "over the caps" in o["text"]]
    assert len(notices) == 1 and seen[-1] is notices[0]  # nothing more is sent live past the caps
    live_text = "".join(o["text"] for o in seen[:-1])
    assert live_text == collector.outputs()[0]["text"]  # the live view is the stored head
