/* capctl source commands (being written): fail loudly until they exist. */
#include <stdio.h>

#include "ctl/ctl.h"

int cap_ctl_cmd_source(struct cap_ctl *ctl, int argc, char **argv)
{
    (void)ctl;
    (void)argc;
    (void)argv;
    fprintf(stderr, "capctl: source commands are not implemented yet\n");
    return CAP_CTL_FAIL;
}
