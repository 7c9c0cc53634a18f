/* node_helpers.h -- a Node as the decision tests build it: a GPU product label and a count. */
#pragma once

#include <stdint.h>
#include <string.h>

#include "gx/objects.h"

/* A node named "n" with gpus GPUs of product (its model as from GFD's label). */
static inline struct node_info test_node(const char *product, int64_t gpus)
{
    struct node_info n;

    memset(&n, 0, sizeof(n));
    n.name = STR_LIT("n");
    n.product = str_from_cstr(product);
    n.model = obj_model_from_product(n.product);
    n.gpu_allocatable = gpus;
    return n;
}
