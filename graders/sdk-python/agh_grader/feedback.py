"""Feedback held to the host's cap, as the host would clip it."""

MAX_FEEDBACK_BYTES = 64 * 1024
"""Most bytes (UTF-8) of one test's feedback the host keeps."""


def clip_feedback(feedback: str) -> str:
    """``feedback`` held to :data:`MAX_FEEDBACK_BYTES` at a character
    boundary, with a last line saying how much was cut. Feedback is often
    what the student printed: its size is the student's choice, never a
    reason for the host to refuse the report."""
    data = feedback.encode("utf-8", "surrogatepass")
    if len(data) <= MAX_FEEDBACK_BYTES:
        return feedback
    over = len(data) - MAX_FEEDBACK_BYTES
    note = f"\n[agh: feedback clipped to {MAX_FEEDBACK_BYTES // 1024} KiB; {over} more bytes not shown]"
    return data[: MAX_FEEDBACK_BYTES - len(note)].decode("utf-8", "ignore") + note
