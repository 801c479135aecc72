"""WhatsApp's limits on interactive and text messages (meta-contract.md §6), in code points."""

MAX_BUTTONS = 3
MAX_BUTTON_TITLE = 20
MAX_BUTTON_ID = 256

MAX_SECTIONS = 10
MAX_ROWS = 10  # across all sections together, not per section
MAX_SECTION_TITLE = 24
MAX_ROW_TITLE = 24
MAX_ROW_DESCRIPTION = 72
MAX_ROW_ID = 200
MAX_LIST_BUTTON = 20

MAX_BODY_WITH_BUTTONS = 1024
MAX_BODY_WITH_LIST = 4096
MAX_TEXT_BODY = 4096
MAX_HEADER = 60
MAX_FOOTER = 60
MAX_CAPTION = 1024  # image, video and document captions
MAX_CTA_DISPLAY_TEXT = 20  # a cta_url button's label
MAX_FLOW_CTA = 20  # a Flow message's button label (flow_cta), no emoji
